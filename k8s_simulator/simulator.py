"""Wiring: store + scheduler + kubelet + controllers + the HTTP API, started and stopped as one."""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path
from typing import Any

from . import errors, persistence
from .api import ApiServer
from .controllers import Controllers
from .events import EventRecorder
from .faults import Faults
from .images import ImageMap
from .kubeconfig import build_kubeconfig, write_kubeconfig
from .kubelet import Kubelet, KubeletConfig
from .nodes import DEFAULT_NETWORK, Network, build_node
from .scheduler import Scheduler
from .store import Store

log = logging.getLogger("k8s_simulator")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Simulator:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        state_dir: Path,
        images: ImageMap,
        node_specs: list[dict[str, Any]],
        token: str | None = None,
        history: int = 1000,
        bookmark_interval: float = 60.0,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        allow_anonymous: bool = False,
        network: Network = DEFAULT_NETWORK,
    ) -> None:
        self.allow_anonymous = allow_anonymous
        self.state_dir = state_dir.resolve()
        self.token = token or secrets.token_urlsafe(24)
        self.bookmark_interval = bookmark_interval
        self.stopping = False
        self.store = Store(history=history)
        self.events = EventRecorder(self.store)
        self.faults = Faults()
        self.http = ApiServer((host, port), self)
        self.host, self.port = self.http.server_address[:2]
        self.address = f"{self.host}:{self.port}"
        self.scheduler = Scheduler(self.store, self.events, self.faults)
        self.controllers = Controllers(self.store, self.state_dir)
        self.kubelet = Kubelet(
            self.store,
            self.events,
            self.faults,
            KubeletConfig(
                state_dir=self.state_dir,
                images=images,
                api_host=str(self.host),
                api_port=int(self.port),
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                network=network,
            ),
        )
        self._serve = threading.Thread(target=self.http.serve_forever, name="api", daemon=True)
        snapshot_path = self.state_dir / "objects.json"
        snapshot = persistence.load(snapshot_path)
        if snapshot is not None:
            self.store.restore(snapshot)
        for namespace in SYSTEM_NAMESPACES:
            if self.store.find("namespaces", "", namespace) is None:
                self.store.create("namespaces", "", {"metadata": {"name": namespace}})
        for index, spec in enumerate(node_specs):
            self.store.create("nodes", "", build_node(index, spec, network))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.saver = persistence.Saver(self.store, snapshot_path)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def kubeconfig(self, namespace: str = "default") -> dict:
        return build_kubeconfig(self.url, self.token, namespace)

    def start(self, kubeconfig: Path | None = None) -> None:
        (self.state_dir / "volumes").mkdir(parents=True, exist_ok=True)
        self.saver.start()
        self.controllers.start()
        self.scheduler.start()
        self.kubelet.start()
        self._serve.start()
        if kubeconfig is not None:
            write_kubeconfig(kubeconfig, self.kubeconfig())

    def stop(self) -> None:
        """Stop serving and kill every pod process (they die with the simulated node)."""
        self.stopping = True
        self.store.close()
        self.http.shutdown()
        self.http.server_close()
        self.scheduler.stop()
        self.controllers.stop()
        self.kubelet.stop()
        self.saver.stop()

    # --- /simulator side endpoints -----------------------------------------------------

    def side_endpoint(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if not parts or parts == [""]:
            return 200, {"simulator": "k8s_simulator", "faults": list(self.faults.rules())}
        if parts[0] == "faults":
            return self._faults_endpoint(method, parts[1:], body)
        if parts[0] == "pods" and len(parts) == 4 and parts[3] == "kill" and method == "POST":
            return self._kill(parts[1], parts[2], body or {})
        raise errors.ApiError(404, "NotFound", "no such simulator endpoint")

    def _faults_endpoint(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST" and not rest:
            return 201, self.faults.add(body)
        if method == "GET" and not rest:
            return 200, {"rules": self.faults.rules()}
        if method == "DELETE":
            self.faults.remove(int(rest[0]) if rest and rest[0].isdigit() else None)
            return 200, {"rules": self.faults.rules()}
        raise errors.ApiError(
            405, "MethodNotAllowed", "use POST, GET or DELETE on /simulator/faults"
        )

    def _kill(self, namespace: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        pod = self.store.get("pods", namespace, name)
        reason = body.get("reason", "Error")
        if reason not in ("Error", "OOMKilled", "Evicted"):
            raise errors.ApiError(422, "Invalid", "reason must be one of Error, OOMKilled, Evicted")
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = body.get("container") or names[0]
        if container not in names:
            raise errors.ApiError(
                422, "Invalid", f"pod {name} has no container {container!r}; it has {names}"
            )
        self.kubelet.worker(namespace, name).inbox.put(("kill", container, reason))
        return 202, {"pod": name, "container": container, "reason": reason}
