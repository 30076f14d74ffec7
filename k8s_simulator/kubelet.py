"""The simulated kubelet: runs each bound pod's containers as local processes at the pod's
own IP in 127.0.0.0/8 and reports status, conditions and events the way a kubelet does.

One PodWorker thread per pod (like the kubelet's pod workers): init containers in order,
then the containers; exits restart per restartPolicy with CrashLoopBackOff back-off; delete
sends SIGTERM, then SIGKILL after the grace period, then removes the pod. Sidecars
(restartable init containers), probes other than "ready once running", and resource limits
are not enforced; OOM, eviction, pull failures and crash loops come from fault injection."""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .events import EventRecorder
from .faults import Faults
from .images import ImageMap, normalize
from .nodes import DEFAULT_NETWORK, Network
from .probes import watch_readiness
from .processes import descendants, exit_code, kill_all, launch, signal_tree
from .runtime import ConfigError, build_launch
from .scheduler import set_condition
from .store import Change, Store, now_iso
from .volumes import MountError, container_mounts

log = logging.getLogger("k8s_simulator.kubelet")

MIN_GRACE = 2  # kubelet's minimumGracePeriodInSeconds, also for force deletes
CRASH_COMMAND = [sys.executable, "-c", "import sys; print('simulated crash'); sys.exit(1)"]


class _Deleted(Exception):
    def __init__(self, grace: int) -> None:
        self.grace = grace


@dataclass
class KubeletConfig:
    state_dir: Path
    images: ImageMap
    api_host: str
    api_port: int
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    network: Network = DEFAULT_NETWORK


class IpPool:
    """Pod IPs 127.<network>.<node>.2-254 (nodes.Network), handed out round
    robin so a freed IP rests a while.

    A cluster's IPAM never hands out an address in use; on one host the
    addresses are shared with whatever else runs there (another simulator, a
    leftover process of an earlier run), so an address where one of the pod's
    ports cannot be bound is passed over."""

    def __init__(self, network: Network = DEFAULT_NETWORK) -> None:
        self.network = network
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._next: dict[int, itertools.cycle[int]] = {}

    def take(self, node_index: int, ports: Sequence[int] = ()) -> str:
        """A free address, one where PORTS can be bound when there is one
        (else the pod's container fails to bind, as it would on a node whose
        host network holds its port)."""
        with self._lock:
            cycle = self._next.setdefault(node_index, itertools.cycle(range(2, 255)))
            for check in (ports, ()):
                for _ in range(253):
                    ip = self.network.pod_ip(node_index, next(cycle))
                    if ip not in self._used and _bindable(ip, check):
                        self._used.add(ip)
                        return ip
        raise RuntimeError(f"node {node_index + 1} has no free pod IP")

    def release(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)


def _bindable(ip: str, ports: Sequence[int]) -> bool:
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
            except OSError:
                return False
    return True


def container_ports(pod: dict[str, Any]) -> list[int]:
    """The TCP ports the pod's containers declare."""
    return [
        int(port["containerPort"])
        for container in pod.get("spec", {}).get("containers") or []
        for port in container.get("ports") or []
        if port.get("containerPort") and port.get("protocol", "TCP") == "TCP"
    ]


@dataclass
class ContainerState:
    spec: dict[str, Any]
    init: bool
    status: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None
    kill_reason: str = ""
    crashes: int = 0


class Kubelet:
    def __init__(
        self, store: Store, events: EventRecorder, faults: Faults, config: KubeletConfig
    ) -> None:
        self.store = store
        self.events = events
        self.faults = faults
        self.config = config
        self.ips = IpPool(config.network)
        self.pulled: set[tuple[str, str]] = set()
        self._workers: dict[str, PodWorker] = {}
        self._done: set[str] = set()  # uids whose worker finished
        self._lock = threading.Lock()
        self._feed = store.subscribe()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._feed.put(None)  # type: ignore[arg-type]
        self._thread.join(timeout=5)
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.inbox.put(("shutdown",))
        for worker in workers:
            worker.join(timeout=MIN_GRACE + 3)

    def node_index(self, node: str) -> int:
        nodes, _, _ = self.store.list("nodes", None)
        names = [n["metadata"]["name"] for n in nodes]
        return names.index(node) if node in names else 0

    def _loop(self) -> None:
        while True:
            change = self._feed.get()
            if change is None:
                return
            if change.plural == "pods":
                self._on_pod(change)

    def _on_pod(self, change: Change) -> None:
        pod = change.obj
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if worker is None:
                current = self._runnable(change)
                if current is not None:
                    worker = self._workers[uid] = PodWorker(self, current)
                    worker.start()
                return
        if change.type == "DELETED":
            worker.inbox.put(("delete", pod["metadata"].get("deletionGracePeriodSeconds", 0), True))
        elif pod["metadata"].get("deletionTimestamp"):
            worker.inbox.put(
                ("delete", pod["metadata"].get("deletionGracePeriodSeconds", 0), False)
            )

    def _runnable(self, change: Change) -> dict[str, Any] | None:
        """A bound, live pod this kubelet has not run yet (changes arrive late: a pod whose
        worker already finished, or that is gone from the store, must not start again)."""
        pod, meta = change.obj, change.obj["metadata"]
        if change.type == "DELETED" or meta["uid"] in self._done or not pod["spec"].get("nodeName"):
            return None
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return None
        current = self.store.find("pods", meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return None
        if current["metadata"].get("deletionTimestamp"):
            # deleted before it ever ran here: nothing to stop, finish the delete
            self.store.remove("pods", meta["namespace"], meta["name"], meta["uid"])
            return None
        return current

    def forget(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)
            self._done.add(uid)

    def worker(self, namespace: str, name: str) -> PodWorker:
        with self._lock:
            for worker in self._workers.values():
                if (worker.namespace, worker.name) == (namespace, name):
                    return worker
        raise errors.ApiError(409, "Conflict", f'pod "{name}" is not running on a simulated node')

    def read_log(self, pod: dict[str, Any], query: dict[str, str]) -> bytes:
        spec = pod["spec"]
        names = [c["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])]
        container = query.get("container") or (names[0] if len(names) == 1 else "")
        if container not in names:
            raise errors.bad_request(
                f"a container name must be specified for pod {pod['metadata']['name']},"
                f" choose one of: {[c['name'] for c in spec.get('containers', [])]}"
            )
        suffix = ".previous.log" if query.get("previous") == "true" else ".log"
        path = pod_dir(self.config.state_dir, pod) / "logs" / (container + suffix)
        if not path.exists():
            raise errors.bad_request(
                f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start:'
                " ContainerCreating"
            )
        data = path.read_bytes()
        if query.get("tailLines"):
            data = b"".join(data.splitlines(keepends=True)[-int(query["tailLines"]) :])
        return data


def pod_dir(state_dir: Path, pod: dict[str, Any]) -> Path:
    meta = pod["metadata"]
    return state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


class PodWorker(threading.Thread):
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.kubelet = kubelet
        self.store = kubelet.store
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.node = pod["spec"]["nodeName"]
        self.pod = pod
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.dir = pod_dir(kubelet.config.state_dir, pod)
        self.ip = ""
        self.fault = kubelet.faults.fault_for(pod)
        spec = pod["spec"]
        self.inits = [ContainerState(c, True) for c in spec.get("initContainers") or []]
        self.mains = [ContainerState(c, False) for c in spec["containers"]]
        self.initialized = not self.inits
        self.evicted = ""

    # --- the pod's life ----------------------------------------------------------------

    def run(self) -> None:
        try:
            try:
                self._setup()
                for state in self.inits:
                    self._run_init(state)
                self.initialized = True
                for state in self.mains:
                    self._start(state)
            except _Finished:
                pass  # a failed init container with restartPolicy Never: wait for the delete
            self._supervise()
        except _Deleted as deleted:
            self._terminate(deleted.grace)
            self.store.remove("pods", self.namespace, self.name, self.uid)
        except _Shutdown:
            self._terminate(0, shutdown=True)
        except Exception:
            log.exception("pod worker %s/%s failed", self.namespace, self.name)
            self._terminate(0, shutdown=True)
        finally:
            if self.ip:
                self.kubelet.ips.release(self.ip)
            self.kubelet.forget(self.uid)

    def _setup(self) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        index = self.kubelet.node_index(self.node)
        self.host_ip = self.kubelet.ips.network.node_ip(index)
        self.ip = (
            self.host_ip
            if self.pod["spec"].get("hostNetwork")
            else self.kubelet.ips.take(index, container_ports(self.pod))
        )
        for state in self.inits:
            state.status = self._waiting(state, "PodInitializing")
        for state in self.mains:
            state.status = self._waiting(
                state, "PodInitializing" if self.inits else "ContainerCreating"
            )
        self._publish(first=True)

    def _run_init(self, state: ContainerState) -> None:
        while True:
            self._start(state)
            code = self._wait_exit(state)
            if code == 0:
                return
            if self.pod["spec"].get("restartPolicy") == "Never":
                self._publish()
                raise _Finished
            self._back_off(state)

    def _supervise(self) -> None:
        while True:
            timers = [s.restart_at for s in self.mains if s.restart_at is not None]
            timeout = max(0.0, min(timers) - time.monotonic()) if timers else None
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                message = ("timer",)
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "delete":
            raise _Deleted(message[1])
        if kind == "shutdown":
            raise _Shutdown
        if kind == "timer":
            now = time.monotonic()
            for state in self.mains:
                if state.restart_at is not None and state.restart_at <= now:
                    state.restart_at = None
                    self._start(state)
        elif kind == "exit":
            self._on_exit(*message[1:])
        elif kind == "kill":
            self._kill(*message[1:])
        elif kind == "ready":
            state = self._state(message[1])
            if state.proc is message[2]:
                state.status = {**state.status, "ready": message[3]}
                self._publish()

    # --- containers --------------------------------------------------------------------

    def _waiting(self, state: ContainerState, reason: str, message: str = "") -> dict[str, Any]:
        image = state.spec["image"]
        previous = state.status.get("lastState", {})
        waiting = {"reason": reason, **({"message": message} if message else {})}
        return {
            "name": state.spec["name"],
            "image": image,
            "imageID": "",
            "ready": False,
            "restartCount": state.status.get("restartCount", 0),
            "started": False,
            "state": {"waiting": waiting},
            "lastState": previous,
        }

    def _set_waiting(self, state: ContainerState, reason: str, message: str = "") -> None:
        state.status = self._waiting(state, reason, message)
        self._publish()

    def _event(
        self, type_: str, reason: str, message: str, state: ContainerState | None = None
    ) -> None:
        field_path = ""
        if state is not None:
            section = "initContainers" if state.init else "containers"
            field_path = f"spec.{section}{{{state.spec['name']}}}"
        self.kubelet.events.record(
            self.pod,
            type_,
            reason,
            message,
            component="kubelet",
            host=self.node,
            field_path=field_path,
        )

    def _wait(self, seconds: float) -> None:
        """Sleep SECONDS while still answering deletes and kills."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                return
            self._handle(message)

    def _backoff_delay(self, count: int) -> float:
        config = self.kubelet.config
        return min(config.backoff_base * 2 ** max(count - 1, 0), config.backoff_max)

    def _pull(self, state: ContainerState) -> Path:
        """Resolve the image to an environment (pulling it), or loop in ImagePullBackOff."""
        image = state.spec["image"]
        policy = state.spec.get("imagePullPolicy", "IfNotPresent")
        attempts = 0
        while True:
            venv = self.kubelet.config.images.resolve(image)
            failing = self.fault in ("ErrImagePull", "ImagePullBackOff") or venv is None
            present = (self.node, image) in self.kubelet.pulled
            if not failing and present and policy != "Always":
                self._event(
                    "Normal",
                    "Pulled",
                    f'Container image "{image}" already present on machine',
                    state,
                )
                return venv  # type: ignore[return-value]
            if policy == "Never":
                message = f'Container image "{image}" is not present with pull policy of Never'
                self._event("Warning", "ErrImageNeverPull", message, state)
                self._set_waiting(state, "ErrImageNeverPull", message)
                self._wait(self._backoff_delay(attempts := attempts + 1))
                continue
            self._event("Normal", "Pulling", f'Pulling image "{image}"', state)
            if not failing:
                self.kubelet.pulled.add((self.node, image))
                self._event(
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in 0s (0s including waiting).'
                    " Image size: 0 bytes.",
                    state,
                )
                return venv  # type: ignore[return-value]
            ref = normalize(image)
            reason = (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}":'
                f' failed to resolve reference "{ref}": {ref}: not found'
            )
            self._event("Warning", "Failed", f'Failed to pull image "{image}": {reason}', state)
            self._event("Warning", "Failed", "Error: ErrImagePull", state)
            self._set_waiting(state, "ErrImagePull", reason)
            attempts += 1
            delay = self._backoff_delay(attempts)
            if self.fault == "ImagePullBackOff" or attempts > 1:
                self._event("Normal", "BackOff", f'Back-off pulling image "{image}"', state)
                self._event("Warning", "Failed", "Error: ImagePullBackOff", state)
                self._set_waiting(
                    state, "ImagePullBackOff", f'Back-off pulling image "{image}": {reason}'
                )
            self._wait(delay)

    def _lookup(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.store.find(plural, self.namespace, name)

    def _prepare(self, state: ContainerState, venv: Path):
        """Mounts and launch spec; waits (FailedMount / CreateContainerConfigError) until ready."""
        attempts = 0
        while True:
            try:
                mounts = container_mounts(
                    self.pod, state.spec, self.dir, self.kubelet.config.state_dir, self._lookup
                )
                return build_launch(
                    self.pod,
                    state.spec,
                    venv=venv,
                    mounts=mounts,
                    rootfs=self.dir / "rootfs",
                    lookup=self._lookup,
                    api_host=self.kubelet.config.api_host,
                    api_port=self.kubelet.config.api_port,
                )
            except MountError as error:
                self._event("Warning", "FailedMount", str(error))
                self._set_waiting(state, "ContainerCreating")
            except ConfigError as error:
                self._event("Warning", "Failed", f"Error: {error}", state)
                self._set_waiting(state, "CreateContainerConfigError", str(error))
            attempts += 1
            self._wait(self._backoff_delay(attempts) / 10)

    def _start(self, state: ContainerState) -> None:
        venv = self._pull(state)
        spec = self._prepare(state, venv)
        spec.cwd.mkdir(parents=True, exist_ok=True)
        name = state.spec["name"]
        log_path = self.dir / "logs" / f"{name}.log"
        if log_path.exists():
            shutil.move(log_path, self.dir / "logs" / f"{name}.previous.log")
        argv = list(spec.argv)
        if self.fault == "CrashLoopBackOff" and not state.init:
            argv = CRASH_COMMAND
        executable = shutil.which(argv[0], path=spec.env["PATH"]) if "/" not in argv[0] else argv[0]
        self._event("Normal", "Created", f"Created container: {name}", state)
        try:
            if executable is None:
                raise FileNotFoundError(argv[0])
            proc = launch([executable, *argv[1:]], env=spec.env, cwd=str(spec.cwd), log=log_path)
        except OSError as error:
            why = (
                f'exec: "{argv[0]}": executable file not found in $PATH'
                if isinstance(error, FileNotFoundError) and error.filename in (None, argv[0])
                else str(error)
            )
            message = (
                "failed to create containerd task: failed to create shim task: OCI runtime create"
                " failed: runc create failed: unable to start container process: error during"
                f" container init: {why}: unknown"
            )
            self._event("Warning", "Failed", f"Error: {message}", state)
            self._terminated(state, 128, "StartError", message)
            self.inbox.put(("exit", name, None, 128))
            return
        state.proc = proc
        container_id = (
            "containerd://" + hashlib.sha256(f"{self.uid}/{name}/{proc.pid}".encode()).hexdigest()
        )
        state.status = {
            **self._waiting(state, ""),
            "containerID": container_id,
            "imageID": f"{normalize(state.spec['image'])}@sha256:"
            + hashlib.sha256(state.spec["image"].encode()).hexdigest(),
            "ready": not state.init and "readinessProbe" not in state.spec,
            "started": True,
            "state": {"running": {"startedAt": now_iso()}},
        }
        self._event("Normal", "Started", f"Started container {name}", state)
        threading.Thread(target=self._reap, args=(name, proc), daemon=True).start()
        if "readinessProbe" in state.spec and not state.init:
            watch_readiness(
                state.spec["readinessProbe"],
                state.spec,
                self.ip,
                spec,
                alive=lambda: proc.poll() is None and state.proc is proc,
                report=lambda ready: self.inbox.put(("ready", name, proc, ready)),
            )
        self._publish()
        if self.fault in ("OOMKilled", "Evicted") and not state.init:
            self.inbox.put(("kill", name, self.fault))

    def _reap(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        self.inbox.put(("exit", name, proc, exit_code(code)))

    def _state(self, name: str) -> ContainerState:
        return next(s for s in self.inits + self.mains if s.spec["name"] == name)

    def _terminated(self, state: ContainerState, code: int, reason: str, message: str = "") -> None:
        running = state.status.get("state", {}).get("running", {})
        terminated = {
            "exitCode": code,
            "reason": reason,
            "startedAt": running.get("startedAt", now_iso()),
            "finishedAt": now_iso(),
            **({"message": message} if message else {}),
            **(
                {"containerID": state.status["containerID"]}
                if state.status.get("containerID")
                else {}
            ),
        }
        state.status = {
            **state.status,
            "ready": False,
            "started": False,
            "state": {"terminated": terminated},
        }
        state.proc = None

    def _wait_exit(self, state: ContainerState) -> int:
        """Block until STATE's process exits (init containers); answers deletes meanwhile."""
        while True:
            message = self.inbox.get()
            if message[0] == "exit" and message[1] == state.spec["name"]:
                return self._record_exit(state, message[2], message[3])
            self._handle(message)

    def _record_exit(self, state: ContainerState, proc: Any, code: int) -> int:
        if proc is not None and proc is not state.proc:
            return code  # a stale exit of a process already replaced
        if proc is not None:
            reason = state.kill_reason or ("Completed" if code == 0 else "Error")
            state.kill_reason = ""
            self._terminated(state, code, reason)
        self._publish()
        return code

    def _on_exit(self, name: str, proc: Any, code: int) -> None:
        state = self._state(name)
        if proc is not None and proc is not state.proc:
            return
        self._record_exit(state, proc, code)
        if self.evicted:
            return
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            self._schedule_restart(state)
        self._publish()

    def _schedule_restart(self, state: ContainerState) -> None:
        state.crashes += 1
        delay = self._backoff_delay(state.crashes)
        name = state.spec["name"]
        last = state.status.get("state", {})
        state.status = {**state.status, "restartCount": state.status.get("restartCount", 0) + 1}
        state.status["lastState"] = last
        pod = f"{self.name}_{self.namespace}({self.uid})"
        message = f"back-off {int(delay)}s restarting failed container={name} pod={pod}"
        state.status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        self._event(
            "Warning",
            "BackOff",
            f"Back-off restarting failed container {name} in pod {pod}",
            state,
        )
        state.restart_at = time.monotonic() + delay

    def _back_off(self, state: ContainerState) -> None:
        self._schedule_restart(state)
        self._publish()
        self._wait(max(0.0, (state.restart_at or 0) - time.monotonic()))
        state.restart_at = None

    def _kill(self, name: str, reason: str) -> None:
        state = self._state(name)
        if reason == "Evicted":
            self._evict(state)
            return
        if state.proc is None:
            return
        if reason == "OOMKilled":
            command = Path(state.proc.args[0]).name if state.proc.args else name
            self.kubelet.events.record(
                self._node_object(),
                "Warning",
                "OOMKilling",
                f"Memory cgroup out of memory: Killed process {state.proc.pid} ({command})",
                component="kernel-monitor",
                host=self.node,
            )
        state.kill_reason = reason if reason == "OOMKilled" else ""
        signal_tree(state.proc, signal.SIGKILL)

    def _node_object(self) -> dict[str, Any]:
        node = self.store.find("nodes", "", self.node)
        return node or {"kind": "Node", "metadata": {"name": self.node, "uid": self.node}}

    def _evict(self, state: ContainerState) -> None:
        requested = ((state.spec.get("resources") or {}).get("requests") or {}).get("memory", "0")
        message = (
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 0Ki."
            f" Container {state.spec['name']} was using 1Gi, request is {requested}, has larger"
            " consumption of memory. "
        )
        self.evicted = message
        self._event("Warning", "Evicted", message)
        for other in self.mains:
            if other.proc is not None:
                self._event("Normal", "Killing", f"Stopping container {other.spec['name']}", other)
                proc = other.proc
                signal_tree(proc, signal.SIGKILL)
                proc.wait()
                self._terminated(other, 137, "Error")
            other.restart_at = None
        self._publish()

    def _terminate(self, grace: int, *, shutdown: bool = False) -> None:
        running = [s for s in self.inits + self.mains if s.proc is not None]
        trees = [descendants(s.proc.pid) for s in running]  # type: ignore[union-attr]
        for state in running:
            if not shutdown:
                self._event("Normal", "Killing", f"Stopping container {state.spec['name']}", state)
            signal_tree(state.proc, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + max(grace, MIN_GRACE)
        for state in running:
            proc = state.proc
            assert proc is not None
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_tree(proc, signal.SIGKILL)
                proc.wait()
            code = exit_code(proc.returncode)
            self._terminated(state, code, "Completed" if code == 0 else "Error")
        for tree in trees:
            kill_all(tree)  # what outlived its parent: a container's cgroup dies whole
        for state in self.mains:
            state.restart_at = None
        if not shutdown:
            self._publish()

    # --- status ------------------------------------------------------------------------

    def _phase(self) -> str:
        if self.evicted:
            return "Failed"
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" and any(
            s.status.get("state", {}).get("terminated", {}).get("exitCode", 0) != 0
            for s in self.inits
        ):
            return "Failed"
        states = [s.status.get("state", {}) for s in self.mains]
        started = any(
            s.status.get("restartCount") or "waiting" not in s.status.get("state", {})
            for s in self.mains
        )
        if not self.initialized or not started:
            return "Pending"
        if all("terminated" in s for s in states) and not any(m.restart_at for m in self.mains):
            return (
                "Succeeded" if all(s["terminated"]["exitCode"] == 0 for s in states) else "Failed"
            )
        return "Running"

    def _publish(self, *, first: bool = False) -> None:
        phase = self._phase()
        ready = phase == "Running" and all(s.status.get("ready") for s in self.mains)
        incomplete = [
            s.spec["name"]
            for s in self.inits
            if s.status.get("state", {}).get("terminated", {}).get("exitCode") != 0
        ]
        unready = [s.spec["name"] for s in self.mains if not s.status.get("ready")]

        def update(pod: dict[str, Any]) -> None:
            status = pod.setdefault("status", {})
            if first:
                status["startTime"] = now_iso()
            status.update(
                phase=phase,
                hostIP=self.host_ip,
                hostIPs=[{"ip": self.host_ip}],
                podIP=self.ip,
                podIPs=[{"ip": self.ip}],
                containerStatuses=[s.status for s in self.mains],
            )
            if self.inits:
                status["initContainerStatuses"] = [s.status for s in self.inits]
            set_condition(pod, "PodScheduled", "True")
            set_condition(pod, "PodReadyToStartContainers", "True")
            if self.initialized:
                set_condition(pod, "Initialized", "True")
            else:
                set_condition(
                    pod,
                    "Initialized",
                    "False",
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(incomplete)}]",
                )
            if ready:
                set_condition(pod, "ContainersReady", "True")
                set_condition(pod, "Ready", "True")
            else:
                done = phase in ("Succeeded", "Failed")
                reason = "PodCompleted" if done else "ContainersNotReady"
                message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
                set_condition(pod, "ContainersReady", "False", reason, message)
                set_condition(pod, "Ready", "False", reason, message)
            if self.evicted:
                status["reason"] = "Evicted"
                status["message"] = self.evicted
                set_condition(pod, "DisruptionTarget", "True", "TerminationByKubelet", self.evicted)

        updated = self.store.mutate("pods", self.namespace, self.name, update, uid=self.uid)
        if updated is not None:
            self.pod = updated


class _Shutdown(Exception):
    pass


class _Finished(Exception):
    pass
