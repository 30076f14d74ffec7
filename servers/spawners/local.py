"""LocalProcessSpawner: each server is a detached `jupyterhub-singleuser`
process on 127.0.0.1, started from a user environment (a virtualenv) and run in
the user's persistent home under the data dir.

All servers run as the hub's own OS user: this is a single-tenant-host mode
for teams and classes who trust each other at the OS level (like JupyterHub's
SimpleLocalProcessSpawner). Limits applied where the OS allows it without
privileges: address space (RLIMIT_AS, from the profile's mem_limit) and open
files (RLIMIT_NOFILE); CPU limits need cgroups and are passed only as the
informational CPU_LIMIT variable.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from servers.spawners.base import Progress, Spawner, SpawnError, SpawnSpec, Started, hub_environment

log = logging.getLogger(__name__)

_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


def parse_bytes(value: str) -> int:
    """'512M' -> 536870912; plain numbers are bytes (KubeSpawner's notation)."""
    text = value.strip().upper().removesuffix("I").removesuffix("B")
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a live server from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # exited, not yet reaped
    return fields[19]


class LocalProcessSpawner(Spawner):
    def __init__(self, *, default_env: str, log_dir: Path, allow_root: bool | None = None) -> None:
        self.default_env = default_env
        self.log_dir = log_dir
        self.allow_root = os.geteuid() == 0 if allow_root is None else allow_root

    def command(self, spec: SpawnSpec) -> list[str]:
        env_dir = Path(spec.user_env or self.default_env)
        exe = env_dir / "bin" / "jupyterhub-singleuser"
        if not exe.exists():
            raise SpawnError(f"user environment {env_dir} has no jupyterhub-singleuser")
        cmd = [str(exe)]
        if self.allow_root:
            cmd.append("--ServerApp.allow_root=True")
        return cmd

    def start(self, spec: SpawnSpec, progress: Progress) -> Started:
        cmd = self.command(spec)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        spec.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        env.update(HOME=str(spec.home), USER=spec.username, SHELL="/bin/bash")
        env.update(hub_environment(spec, bind_url=url))
        env["VIRTUAL_ENV"] = str(Path(cmd[0]).parent.parent)
        env["PATH"] = f"{Path(cmd[0]).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        log_name = f"{spec.username}-{spec.server_name or 'default'}.log"
        limit = parse_bytes(spec.mem_limit) if spec.mem_limit else None
        progress(30, "Starting the Jupyter server process")
        with open(self.log_dir / log_name, "ab") as logfile:
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=spec.home,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: _apply_limits(limit),
            )
        # reap it when it exits, so a dead server does not linger as a zombie
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        state = {"pid": proc.pid, "port": port, "started": process_start_time(proc.pid)}
        state["log"] = str(self.log_dir / log_name)
        return Started(url=url, state=state)

    def poll(self, state: dict[str, Any]) -> int | None:
        pid = state.get("pid")
        if not pid:
            return 0
        started = process_start_time(int(pid))
        if started is None or (state.get("started") and started != state["started"]):
            return 0
        return None

    def stop(self, state: dict[str, Any], *, grace: float) -> None:
        if self.poll(state) is not None:
            return
        pid = int(state["pid"])
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.poll(state) is not None:
                return
            time.sleep(0.05)
        log.warning("server pid %s ignored SIGTERM for %.0fs: killing it", pid, grace)
        _signal_group(pid, signal.SIGKILL)

    def describe_failure(self, state: dict[str, Any]) -> str:
        tail = ""
        path = state.get("log")
        if path:
            try:
                lines = Path(path).read_text(errors="replace").splitlines()
                tail = "; ".join(line for line in lines[-3:] if line.strip())
            except OSError:
                pass
        return f"the server process exited{': ' + tail if tail else ''}"


def _apply_limits(mem_limit: int | None) -> None:
    if mem_limit:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("not allowed to signal process group %s", pid)
