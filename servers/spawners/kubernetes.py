"""KubernetesSpawner: each server is a pod, each user has a claim (their home).

The impure shell around servers/spawners/manifests.py (what the pod and the
claim are) and pod_status.py (what a pod's status means). It talks to the
cluster with the official `kubernetes` client, from a kubeconfig file or the
pod's service account, and follows pods and events through one shared watch
per process (reflector.py), never a poll per server.

Lifecycle: the claim is created if missing and kept when the server stops;
the pod is created (or, if a pod of this server already exists, adopted when
it is this very start's, else replaced: an older attempt's pod holds revoked
credentials); its events become progress lines; the start returns once the
notebook container runs, and the hub then waits for the server to answer.
A pod that cannot succeed (image pull, crash loop, OOM, eviction) fails the
start at once with its reason; an unschedulable one fails at the start
timeout with the scheduler's message. Stop deletes the pod with a grace
period and waits until it is gone, so that the next start can reuse the name.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from servers import naming
from servers.spawners import pod_status
from servers.spawners.base import (
    Progress,
    Spawner,
    SpawnError,
    SpawnSpec,
    Started,
    StopInProgress,
)
from servers.spawners.manifests import ManifestError, PodSettings, build_pod, build_pvc, resolve
from servers.spawners.reflector import Reflector, wait_until

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 30.0  # for the first list of a new process
GONE_MARGIN = 15.0  # beyond the grace period, before a stuck pod is forced
# pods of a failed or superseded start: short, but not 0, which would remove the
# object before the kubelet has stopped its containers (a forced delete)
CLEANUP_GRACE = 1


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster is and which part of it is ours."""

    kubeconfig: str  # "" = in-cluster service account
    namespace: str
    instance: str

    def key(self) -> tuple[Any, ...]:
        """Changes when the kubeconfig file does (a restarted simulator writes
        a new one): a stat, not a read, as every spawner call asks."""
        if not self.kubeconfig:
            return (self,)
        stat = Path(self.kubeconfig).stat()
        return (self, stat.st_ino, stat.st_mtime_ns, stat.st_size)


class Cluster:
    """The API client and the two shared watches of one cluster, per process."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.api = client.CoreV1Api(_api_client(cfg.kubeconfig))
        self.changed = threading.Condition()
        self.pods = Reflector(
            self.api.list_namespaced_pod,
            cfg.namespace,
            selector=naming.instance_selector(cfg.instance),
            kind="pods",
            changed=self.changed,
        ).start()
        self.events = Reflector(
            self.api.list_namespaced_event,
            cfg.namespace,
            kind="events",
            max_objects=5000,
            changed=self.changed,
            index=lambda event: (event.get("involvedObject") or {}).get("uid") or "",
        ).start()

    def generation(self) -> tuple[int, int]:
        return (self.pods.generation, self.events.generation)

    def wait(self, generation: tuple[int, int], timeout: float) -> None:
        """Until a pod or an event changed after GENERATION, or TIMEOUT."""
        with self.changed:
            self.changed.wait_for(lambda: self.generation() != generation, timeout=timeout)

    def synced_pods(self) -> Reflector:
        if not self.pods.synced.wait(SYNC_TIMEOUT):
            raise SpawnError("the Kubernetes API did not answer (listing pods)")
        return self.pods

    def events_of(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        uid = pod.get("metadata", {}).get("uid") or ""
        return sorted(self.events.by_index(uid), key=_event_time)

    def close(self) -> None:
        self.pods.stop()
        self.events.stop()
        self.api.api_client.close()


def _event_time(event: Mapping[str, Any]) -> str:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def _api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    # a worker runs up to 32 spawns at once (Procfile): one connection each
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


_clusters: dict[tuple[Any, ...], Cluster] = {}
_clusters_lock = threading.Lock()


def cluster_for(cfg: ClusterConfig) -> Cluster:
    """The process's Cluster for CFG, started on first use; one whose
    kubeconfig changed is closed and replaced."""
    key = cfg.key()
    with _clusters_lock:
        found = _clusters.get(key)
        if found is None:
            for old in [k for k, c in _clusters.items() if c.cfg == cfg]:
                _clusters.pop(old).close()
            found = _clusters[key] = Cluster(cfg)
        return found


def close_clusters() -> None:
    """Stop every watch of this process (tests, and a worker shutting down)."""
    with _clusters_lock:
        for cluster in _clusters.values():
            cluster.close()
        _clusters.clear()


class _PodGoing(StopInProgress):
    """A deleted pod on its way out, followed through the shared pod watch."""

    def __init__(self, spawner: KubernetesSpawner, state: dict[str, Any], deadline: float) -> None:
        self.spawner = spawner
        self.state = state
        self.deadline = deadline

    def wait(self, timeout: float | None = None) -> bool:
        now = time.monotonic()
        until = self.deadline if timeout is None else min(self.deadline, now + timeout)
        if self.spawner._wait_gone(self.state["pod"], self.state.get("uid"), until):
            return True
        if time.monotonic() < self.deadline:
            return False
        log.warning(
            "pod %s still there %.0fs after its grace period: forcing",
            self.state["pod"],
            GONE_MARGIN,
        )
        self.spawner._delete(self.state, grace=0)
        return True


class KubernetesSpawner(Spawner):
    def __init__(
        self,
        cfg: ClusterConfig,
        *,
        defaults: Mapping[str, Any],
        start_timeout: float,
        pvc_on_user_delete: str = "keep",
    ) -> None:
        self.cfg = cfg
        self.defaults = dict(defaults)
        self.start_timeout = start_timeout
        self.pvc_on_user_delete = pvc_on_user_delete
        self._cluster: Cluster | None = None

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = cluster_for(self.cfg)
        return self._cluster

    # --- start --------------------------------------------------------------

    def settings_for(self, spec: SpawnSpec) -> PodSettings:
        try:
            return resolve(
                spec, self.defaults, namespace=self.cfg.namespace, instance=self.cfg.instance
            )
        except ManifestError as exc:
            raise SpawnError(str(exc)) from None

    def start(self, spec: SpawnSpec, progress: Progress) -> Started:
        settings = self.settings_for(spec)
        try:
            pod = build_pod(settings)
            claim = build_pvc(settings) if settings.pvc_name else None
        except ManifestError as exc:
            raise SpawnError(str(exc)) from None
        deadline = time.monotonic() + self.start_timeout
        pods = self.cluster.synced_pods()
        if claim is not None:
            self._ensure_claim(claim)
            progress(15, f"Storage {settings.pvc_name} is ready")
        created = self._create_or_adopt(pod, spec.api_token, deadline)
        state = {
            "pod": settings.name,
            "namespace": settings.namespace,
            "uid": created["metadata"]["uid"],
            "port": settings.port,
        }
        progress(20, f"Pod {settings.name} created")
        try:
            running = self._wait_running(pods, state, progress, deadline)
        except SpawnError:
            self._delete(state, grace=CLEANUP_GRACE)
            raise
        return Started(url=f"http://{pod_status.pod_ip(running)}:{settings.port}", state=state)

    def _ensure_claim(self, claim: dict[str, Any]) -> None:
        try:
            # the answer is not read: the client's models cost ~1-2 ms a build
            self.cluster.api.create_namespaced_persistent_volume_claim(
                self.cfg.namespace, claim, _preload_content=False
            )
        except ApiException as exc:
            if exc.status != 409:  # 409: the user's claim exists, keep it as it is
                raise SpawnError(f"could not create your storage: {_api_reason(exc)}") from None

    def _create_or_adopt(self, pod: dict[str, Any], token: str, deadline: float) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        for _attempt in range(3):
            try:
                response = self.cluster.api.create_namespaced_pod(
                    self.cfg.namespace, pod, _preload_content=False
                )
                return self._created(response)
            except ApiException as exc:
                if exc.status != 409:
                    raise SpawnError(f"could not create the pod: {_api_reason(exc)}") from None
            existing = self._read(name)
            if existing is None:
                continue  # went away meanwhile
            if _token_of(existing) == token and not existing["metadata"].get("deletionTimestamp"):
                log.info("adopting pod %s of this same start", name)
                return existing
            log.warning("replacing pod %s left by an earlier start of the server", name)
            self._delete(_state_of(existing), grace=CLEANUP_GRACE)
            self._wait_gone(name, existing["metadata"]["uid"], deadline)
        raise SpawnError(f"pod {name} keeps coming back; is another hub using the namespace?")

    def _created(self, response: Any) -> dict[str, Any]:
        return json.loads(response.data)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            response = self.cluster.api.read_namespaced_pod(
                name, self.cfg.namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise SpawnError(f"could not read pod {name}: {_api_reason(exc)}") from None
        return self._created(response)

    def _wait_running(
        self, pods: Reflector, state: dict[str, Any], progress: Progress, deadline: float
    ) -> dict[str, Any]:
        """Until the pod runs; its new events go to PROGRESS on the way."""
        seen: set[str] = set()
        appeared = False
        while True:
            generation = self.cluster.generation()
            pod = self._current(pods, state)
            if pod is None and appeared:
                raise SpawnError("the server's pod was deleted while it was starting")
            if pod is None:  # created, but the watch has not brought it yet
                if time.monotonic() > deadline:
                    raise SpawnError("the created pod never showed up in the pod watch")
                self.cluster.wait(generation, 0.5)
                continue
            appeared = True
            for event in self.cluster.events_of(pod):
                uid = event["metadata"].get("uid") or event["metadata"]["name"]
                if uid not in seen:
                    seen.add(uid)
                    progress(min(20 + 2 * len(seen), 45), pod_status.event_message(event))
            reason = pod_status.failure(pod)
            if reason:
                raise SpawnError(reason)
            if pod_status.is_running(pod):
                return pod
            left = deadline - time.monotonic()
            if left <= 0:
                waiting = pod_status.waiting_reason(pod, self.cluster.events_of(pod))
                raise SpawnError(
                    f"the server's pod did not start within {self.start_timeout:.0f} seconds"
                    + (f": {waiting}" if waiting else "")
                )
            self.cluster.wait(generation, min(left, 1.0))

    def _current(self, pods: Reflector, state: Mapping[str, Any]) -> dict[str, Any] | None:
        pod = pods.get(state["pod"])
        if pod is None or pod["metadata"].get("uid") != state.get("uid"):
            return None
        return pod

    # --- poll and stop ----------------------------------------------------------

    def poll(self, state: dict[str, Any]) -> int | None:
        if not state.get("pod"):
            return 0
        pod = self._current(self.cluster.synced_pods(), state)
        if pod is None or pod_status.failure(pod, allowed_restarts=state.get("restarts", 0)):
            return 1
        return None

    def describe_failure(self, state: dict[str, Any]) -> str:
        if not state.get("pod"):
            return "the server has no pod"
        pod = self._current(self.cluster.synced_pods(), state)
        if pod is None:
            return f"the server's pod {state['pod']} is gone"
        return (
            pod_status.failure(pod, allowed_restarts=state.get("restarts", 0))
            or "the server stopped"
        )

    def stop(self, state: dict[str, Any], *, grace: float) -> None:
        """Delete the pod (never the claim) and wait until it is gone."""
        going = self.begin_stop(state, grace=grace)
        if going is not None:
            going.wait()

    def begin_stop(self, state: dict[str, Any], *, grace: float) -> StopInProgress | None:
        """Delete the pod (never the claim); the pod terminates on its own, up
        to GRACE seconds, and is forced GONE_MARGIN after that."""
        if not state.get("pod"):
            return None
        self._delete(state, grace=grace)
        return _PodGoing(self, dict(state), time.monotonic() + grace + GONE_MARGIN)

    def _delete(self, state: Mapping[str, Any], *, grace: float) -> None:
        # DeleteOptions as plain JSON: the client's model costs ~1 ms a stop in
        # pydantic's model_dump (py-spy), for two fields
        options: dict[str, Any] = {"gracePeriodSeconds": int(grace)}
        if state.get("uid"):
            options["preconditions"] = {"uid": state["uid"]}  # never a newer pod of that name
        try:
            self.cluster.api.delete_namespaced_pod(
                state["pod"],
                state.get("namespace") or self.cfg.namespace,
                body=options,
                _preload_content=False,  # the pod as deleted is not read
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already / another pod now
                raise SpawnError(
                    f"could not delete pod {state['pod']}: {_api_reason(exc)}"
                ) from None

    def _wait_gone(self, name: str, uid: str | None, deadline: float) -> bool:
        pods = self.cluster.synced_pods()

        def gone() -> bool:
            pod = pods.get(name)
            return pod is None or (uid is not None and pod["metadata"].get("uid") != uid)

        return bool(wait_until(pods, gone, timeout=max(deadline - time.monotonic(), 0)))

    # --- reconcile and users -------------------------------------------------------

    def cleanup(self, active: Iterable[tuple[str, str]], *, grace: float) -> list[str]:
        """Delete this hub's pods that belong to no starting, running or
        stopping server (ACTIVE: (username, server name) pairs)."""
        wanted = {naming.pod_name(user, name) for user, name in active}
        done = []
        for pod in self.cluster.synced_pods().snapshot():
            meta = pod["metadata"]
            if meta["name"] in wanted or meta.get("deletionTimestamp"):
                continue
            self._delete(_state_of(pod), grace=grace)
            done.append(f"deleted pod {meta['name']}: no server of the hub's owns it")
        return done

    def forget_user(self, username: str, storage_name: str) -> list[str]:
        """The user is deleted: their claim goes too if the operator said so."""
        if self.pvc_on_user_delete != "delete":
            return []
        name = naming.pvc_name(storage_name)
        try:
            self.cluster.api.delete_namespaced_persistent_volume_claim(name, self.cfg.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise SpawnError(f"could not delete claim {name}: {_api_reason(exc)}") from None
        return [f"deleted claim {name} of deleted user {username}"]


def _state_of(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    return {"pod": meta["name"], "namespace": meta.get("namespace"), "uid": meta.get("uid")}


def _token_of(pod: Mapping[str, Any]) -> str:
    for container in pod.get("spec", {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "JUPYTERHUB_API_TOKEN":
                return env.get("value") or ""
    return ""


def _api_reason(exc: ApiException) -> str:
    """The API server's own message (its Status body), else the HTTP reason."""
    try:
        return json.loads(exc.body or "{}").get("message") or str(exc.reason)
    except (ValueError, AttributeError):
        return f"{exc.status} {exc.reason}"
