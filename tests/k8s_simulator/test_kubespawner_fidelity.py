"""Fidelity: the real JupyterHub 6.1.1 + KubeSpawner 7.1.0 (with kubernetes_asyncio, in
.venv-kubespawner) spawn and stop a server against the simulator. KubeSpawner is the
reference client: if it cannot do this, the simulator is wrong.

JupyterHub runs with its own proxy, configurable-http-proxy from npm (installed by
`make deps` into .venv-kubespawner/chp), so the server is checked through the proxy as a
browser would reach it."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.k8s import POD_IPS_UNREACHABLE, ROOT

VENV = ROOT / ".venv-kubespawner"
CHP = VENV / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"

CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{directory}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{directory}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.services = [{{"name": "fidelity", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{
        "name": "fidelity",
        "scopes": ["admin:users", "admin:servers", "access:servers"],
        "services": ["fidelity"],
    }}
]
c.KubeSpawner.namespace = "{namespace}"
c.KubeSpawner.image = "quay.io/jupyterhub/singleuser:5"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.start_timeout = 120
c.KubeSpawner.http_timeout = 60
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [
    {{"name": "home", "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}
]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Hub:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_for(self, predicate, what: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            time.sleep(0.2)
        raise AssertionError(f"JupyterHub: timed out waiting for {what}")


@pytest.fixture
def jupyterhub(k8s_cluster, tmp_path, request) -> Hub:
    """JupyterHub + KubeSpawner on the simulator; indirect params override KubeSpawner traits."""
    k8s_cluster.require_simulator(POD_IPS_UNREACHABLE)
    if not (VENV / "bin" / "jupyterhub").exists() or not CHP.exists():
        pytest.fail("the fidelity venv is missing: run `make deps` (builds .venv-kubespawner)")
    port, token = _free_port(), secrets.token_hex(16)
    config = CONFIG.format(
        port=port,
        hub_port=_free_port(),
        proxy_api_port=_free_port(),
        chp=str(CHP),
        directory=tmp_path,
        token=token,
        namespace=k8s_cluster.namespace,
    )
    for trait, value in getattr(request, "param", {}).items():
        config += f"c.KubeSpawner.{trait} = {value!r}\n"
    (tmp_path / "jupyterhub_config.py").write_text(config)
    env = {**os.environ, "KUBECONFIG": str(k8s_cluster.kubeconfig)}
    env["PATH"] = f"{VENV / 'bin'}:{env['PATH']}"
    log = tmp_path / "jupyterhub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV / "bin" / "jupyterhub"), "-f", str(tmp_path / "jupyterhub_config.py")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    hub = Hub(f"http://127.0.0.1:{port}", token)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"jupyterhub exited: {log.read_text()[-3000:]}")
        try:
            return hub.call("GET", "/hub/api/")[0] == 200
        except OSError:
            return False

    try:
        hub.wait_for(up, "the hub to answer", timeout=60)
        yield hub
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log.read_text()[-6000:])


def _server(hub: Hub, name: str = "alice") -> dict:
    code, user = hub.call("GET", f"/hub/api/users/{name}")
    assert code == 200, user
    return user["servers"].get("", {})  # type: ignore[index]


def test_kubespawner_spawns_and_stops_a_server_against_the_simulator(k8s_cluster, jupyterhub):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    assert jupyterhub.call("POST", "/hub/api/users/alice")[0] == 201
    code, body = jupyterhub.call("POST", "/hub/api/users/alice/server")
    assert code in (201, 202), body
    server = jupyterhub.wait_for(lambda: (s := _server(jupyterhub)).get("ready") and s, "ready")
    pod_name = server["state"]["pod_name"]
    pod = core.read_namespaced_pod(pod_name, ns)
    network = k8s_cluster.require_simulator().network
    assert pod.status.phase == "Running" and pod.status.pod_ip.startswith(f"127.{network}.")

    # through JupyterHub's proxy to the single-user server running in the "pod"
    code, status = jupyterhub.call("GET", "/user/alice/api")
    assert code == 200, status
    assert core.read_namespaced_persistent_volume_claim("claim-alice", ns).status.phase == "Bound"

    code, body = jupyterhub.call("DELETE", "/hub/api/users/alice/server")
    assert code in (202, 204), body
    jupyterhub.wait_for(lambda: not _server(jupyterhub), "the server to stop")
    assert pod_name not in [p.metadata.name for p in core.list_namespaced_pod(ns).items]
    # KubeSpawner keeps the user's PVC
    assert core.read_namespaced_persistent_volume_claim("claim-alice", ns).status.phase == "Bound"


def _progress_messages(hub: Hub, user: str):
    request = urllib.request.Request(
        f"{hub.url}/hub/api/users/{user}/server/progress",
        headers={"Authorization": f"token {hub.token}", "Accept": "text/event-stream"},
    )
    with urllib.request.urlopen(request, timeout=120) as stream:
        for line in stream:
            if line.startswith(b"data:"):
                yield json.loads(line[5:]).get("message", "")


@pytest.mark.parametrize("jupyterhub", [{"start_timeout": 20}], indirect=True)
def test_kubespawner_shows_the_scheduler_reason_and_cleans_up_an_unschedulable_pod(
    k8s_cluster, jupyterhub
):
    k8s_cluster.add_fault("Unschedulable")
    assert jupyterhub.call("POST", "/hub/api/users/bob")[0] == 201
    assert jupyterhub.call("POST", "/hub/api/users/bob/server")[0] in (201, 202)
    # KubeSpawner streams the pod's events (its event reflector) into the progress bar
    reason = next(m for m in _progress_messages(jupyterhub, "bob") if "nodes are available" in m)
    assert "0/3 nodes are available: 3 Insufficient cpu." in reason
    jupyterhub.wait_for(lambda: not _server(jupyterhub, "bob"), "the failed start to end")
    k8s_cluster.wait_for_pod_gone("jupyter-bob")  # KubeSpawner deletes the pod it gave up on
