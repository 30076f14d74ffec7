"""Readiness probes (httpGet, tcpSocket, exec) run against the pod IP, as the kubelet does.

A probe thread per running container reports changes of readiness to the pod worker; it
stops when its process does. Liveness and startup probes are not run."""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from .runtime import Launch


def _port(value: Any, container: dict[str, Any]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"no container port named {value!r}")


def probe_once(
    probe: dict[str, Any], container: dict[str, Any], pod_ip: str, launch: Launch
) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            connection = http.client.HTTPConnection(
                get.get("host") or pod_ip, _port(get["port"], container), timeout=timeout
            )
            try:
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                connection.request("GET", get.get("path", "/"), headers=headers)
                return 200 <= connection.getresponse().status < 400
            finally:
                connection.close()
        if "tcpSocket" in probe:
            port = _port(probe["tcpSocket"]["port"], container)
            with socket.create_connection((pod_ip, port), timeout=timeout):
                return True
        if "exec" in probe:
            done = subprocess.run(
                [launch.rewrite(part) for part in probe["exec"]["command"]],
                env=launch.env,
                cwd=launch.cwd,
                timeout=timeout,
                capture_output=True,
            )
            return done.returncode == 0
    except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException):
        return False
    return True


def watch_readiness(
    probe: dict[str, Any],
    container: dict[str, Any],
    pod_ip: str,
    launch: Launch,
    *,
    alive: Callable[[], bool],
    report: Callable[[bool], None],
) -> threading.Thread:
    """Probe every periodSeconds after initialDelaySeconds; REPORT(ready) on each change."""
    stop = threading.Event()

    def run() -> None:
        if stop.wait(float(probe.get("initialDelaySeconds", 0))):
            return
        ready, successes, failures = False, 0, 0
        while alive():
            if probe_once(probe, container, pod_ip, launch):
                successes, failures = successes + 1, 0
                if not ready and successes >= int(probe.get("successThreshold", 1)):
                    ready = True
                    report(True)
            else:
                successes, failures = 0, failures + 1
                if ready and failures >= int(probe.get("failureThreshold", 3)):
                    ready = False
                    report(False)
            if stop.wait(float(probe.get("periodSeconds", 10))):
                return

    thread = threading.Thread(target=run, name="readiness", daemon=True)
    thread.start()
    return thread
