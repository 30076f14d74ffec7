"""Kubernetes for tests: the API simulator (k8s_simulator, a SIMULATOR, not a cluster), or a
real cluster when HUB_TEST_KUBECONFIG names a kubeconfig (then fault injection, which only
the simulator has, is unavailable and the tests that need it are skipped saying so).

`k8s_cluster` gives each test its own namespace on one simulator per session, the real
`kubernetes` client for it, and helpers that wait on watches (never on sleeps)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FAULTS_UNAVAILABLE = (
    "fault injection needs the Kubernetes API simulator; HUB_TEST_KUBECONFIG names a real cluster"
)
POD_IPS_UNREACHABLE = (
    "reaching pod IPs and volume directories from the test needs the Kubernetes API simulator;"
    " HUB_TEST_KUBECONFIG names a real cluster"
)
# An image with python on a real cluster; the simulator maps every image to .venv-user.
PYTHON_IMAGE = "python:3.11-slim"
# Small on purpose, so tests can push a watch past the kept history (410 Gone).
SIMULATOR_HISTORY = 100


@dataclass
class SimulatorProcess:
    kubeconfig: Path
    state_dir: Path
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    network: int  # pods in 127.<network>.0.0/16, nodes in 127.<network - 1>.0.0/24

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited ({proc.returncode}): {log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator wrote no kubeconfig in 30s: {log.read_text()}")
        time.sleep(0.05)


def worker_network() -> int:
    """The simulator network of this pytest-xdist worker: 127.77 for gw0, 127.79
    for gw1, ... Each worker runs simulators of its own (pytest 9 ignores the
    test ids xdist's `loadgroup` rewrites, so tests cannot be kept on one
    worker), and two simulators with one network handed out the same pod
    addresses at once: a request meant for one worker's pod reached the
    other's (the rare 403s, 424s and 502s of the k8s lifecycle tests)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return 77 + 2 * int(worker.removeprefix("gw") or 0)


def start_simulator(directory: Path, *extra: str) -> SimulatorProcess:
    """`python -m k8s_simulator` on a free port and this worker's network,
    short back-offs; stop with stop_simulator."""
    kubeconfig, log = directory / "kubeconfig", directory / "simulator.log"
    network = worker_network()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "k8s_simulator",
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig",
                str(kubeconfig),
                "--state-dir",
                str(directory / "state"),
                "--history",
                str(SIMULATOR_HISTORY),
                "--bookmark-interval",
                "1",
                "--backoff-base",
                "0.5",
                "--backoff-max",
                "2",
                "--network",
                str(network),
                *extra,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_for_file(kubeconfig, proc, log)
    config = yaml.safe_load(kubeconfig.read_text())
    return SimulatorProcess(
        kubeconfig=kubeconfig,
        state_dir=directory / "state",
        url=config["clusters"][0]["cluster"]["server"],
        token=config["users"][0]["user"]["token"],
        proc=proc,
        network=network,
    )


def stop_simulator(simulator: SimulatorProcess) -> None:
    simulator.proc.terminate()
    simulator.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def k8s_simulator(tmp_path_factory) -> Iterator[SimulatorProcess | None]:
    """One simulator per session (None when HUB_TEST_KUBECONFIG names a real cluster)."""
    if os.environ.get("HUB_TEST_KUBECONFIG"):
        yield None
        return
    simulator = start_simulator(tmp_path_factory.mktemp("k8s-simulator"))
    yield simulator
    stop_simulator(simulator)


Pod = kubernetes.client.V1Pod


@dataclass
class K8sCluster:
    kubeconfig: Path
    namespace: str
    api_client: kubernetes.client.ApiClient
    core: kubernetes.client.CoreV1Api
    simulator: SimulatorProcess | None

    @property
    def simulated(self) -> bool:
        return self.simulator is not None

    def require_simulator(self, reason: str = FAULTS_UNAVAILABLE) -> SimulatorProcess:
        if self.simulator is None:
            pytest.skip(reason)
        return self.simulator

    def add_fault(self, fault: str, **match: Any) -> dict[str, Any]:
        """A fault rule for pods in this test's namespace (match: image, labels, times)."""
        code, body = self.require_simulator().call(
            "POST", "/simulator/faults", {"fault": fault, "namespace": self.namespace, **match}
        )
        assert code == 201, body
        return body

    def kill_pod(self, name: str, reason: str = "Error", container: str | None = None) -> None:
        payload = {"reason": reason, **({"container": container} if container else {})}
        path = f"/simulator/pods/{self.namespace}/{name}/kill"
        code, body = self.require_simulator().call("POST", path, payload)
        assert code == 202, body

    def wait_for_pod(
        self, name: str, predicate: Callable[[Pod], object], *, timeout: float = 60
    ) -> Pod:
        """Watch the pod until PREDICATE(pod) holds; the pod as it was then."""
        deadline = time.monotonic() + timeout
        watch = kubernetes.watch.Watch()
        while (left := deadline - time.monotonic()) > 0:
            pods = self.core.list_namespaced_pod(
                self.namespace, field_selector=f"metadata.name={name}"
            )
            for pod in pods.items:
                if predicate(pod):
                    return pod
            for event in watch.stream(
                self.core.list_namespaced_pod,
                self.namespace,
                field_selector=f"metadata.name={name}",
                resource_version=pods.metadata.resource_version,
                timeout_seconds=max(1, int(left)),
            ):
                if event["type"] != "DELETED" and predicate(event["object"]):
                    watch.stop()
                    return event["object"]
        raise AssertionError(f"pod {name} did not reach the wanted state in {timeout:.0f}s")

    def wait_for_pod_gone(self, name: str, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        watch = kubernetes.watch.Watch()
        while (left := deadline - time.monotonic()) > 0:
            pods = self.core.list_namespaced_pod(
                self.namespace, field_selector=f"metadata.name={name}"
            )
            if not pods.items:
                return
            for event in watch.stream(
                self.core.list_namespaced_pod,
                self.namespace,
                field_selector=f"metadata.name={name}",
                resource_version=pods.metadata.resource_version,
                timeout_seconds=max(1, int(left)),
            ):
                if event["type"] == "DELETED":
                    watch.stop()
                    return
        raise AssertionError(f"pod {name} still exists after {timeout:.0f}s")

    def wait_for_event(self, name: str, reason: str, *, timeout: float = 60) -> Any:
        """The first event with REASON about pod NAME (watching events, as KubeSpawner does)."""
        selector = f"involvedObject.kind=Pod,involvedObject.name={name},reason={reason}"
        deadline = time.monotonic() + timeout
        watch = kubernetes.watch.Watch()
        while (left := deadline - time.monotonic()) > 0:
            events = self.core.list_namespaced_event(self.namespace, field_selector=selector)
            if events.items:
                return events.items[0]
            for event in watch.stream(
                self.core.list_namespaced_event,
                self.namespace,
                field_selector=selector,
                resource_version=events.metadata.resource_version,
                timeout_seconds=max(1, int(left)),
            ):
                watch.stop()
                return event["object"]
        raise AssertionError(f"no {reason} event for pod {name} in {timeout:.0f}s")

    def event_reasons(self, name: str) -> list[str]:
        selector = f"involvedObject.kind=Pod,involvedObject.name={name}"
        events = self.core.list_namespaced_event(self.namespace, field_selector=selector).items
        return [e.reason for e in sorted(events, key=lambda e: int(e.metadata.resource_version))]


@pytest.fixture
def k8s_cluster(k8s_simulator) -> Iterator[K8sCluster]:
    """A fresh namespace on the simulator (or on HUB_TEST_KUBECONFIG's cluster), deleted after."""
    real = os.environ.get("HUB_TEST_KUBECONFIG")
    kubeconfig = Path(real) if real else k8s_simulator.kubeconfig
    api_client = kubernetes.config.new_client_from_config(str(kubeconfig))
    core = kubernetes.client.CoreV1Api(api_client)
    namespace = f"test-{secrets.token_hex(4)}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield K8sCluster(kubeconfig, namespace, api_client, core, k8s_simulator)
    finally:
        core.delete_namespace(namespace)
        api_client.close()


def pod_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    """A one-container pod running COMMAND in PYTHON_IMAGE; SPEC adds pod spec fields."""
    container = {"name": "main", "image": PYTHON_IMAGE, "command": command}
    container.update(spec.pop("container", {}))
    metadata = {"name": name, **spec.pop("metadata", {})}
    return {"metadata": metadata, "spec": {"containers": [container], **spec}}


def is_ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
