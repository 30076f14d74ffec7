"""The simulated kube-scheduler: binds pending pods to nodes, or says why it cannot.

Every schedulerName is served (as if the named scheduler, e.g. Z2JH's user scheduler, runs)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from .events import EventRecorder
from .faults import Faults
from .placement import Placement, place, pod_requests
from .store import Change, Store, now_iso

TERMINAL = ("Succeeded", "Failed")


def set_condition(
    pod: dict[str, Any], type_: str, status: str, reason: str = "", message: str = ""
) -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == type_), None)
    wanted = {"type": type_, "status": status, "lastProbeTime": None}
    if reason:
        wanted["reason"] = reason
    if message:
        wanted["message"] = message
    same = current is not None and all(current.get(k) == v for k, v in wanted.items())
    if same and set(current) - set(wanted) <= {"lastTransitionTime"}:
        return
    changed = current is None or current.get("status") != status
    wanted["lastTransitionTime"] = now_iso() if changed else current["lastTransitionTime"]
    if current is None:
        conditions.append(wanted)
    else:
        conditions[conditions.index(current)] = wanted


def _claims(pod: dict[str, Any]) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    ]


def _relevant(change: Change) -> bool:
    """Cluster events after which a pending pod may now fit (or a new pod waits)."""
    if change.plural in ("nodes", "persistentvolumeclaims"):
        return True
    if change.plural != "pods":
        return False
    if change.type == "ADDED":
        return not change.obj["spec"].get("nodeName")
    if change.type == "DELETED":
        return True
    phase = change.obj.get("status", {}).get("phase")
    return phase in TERMINAL and (change.old or {}).get("status", {}).get("phase") != phase


class Scheduler:
    def __init__(self, store: Store, events: EventRecorder, faults: Faults) -> None:
        self.store = store
        self.events = events
        self.faults = faults
        self._feed = store.subscribe()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._feed.put(None)  # type: ignore[arg-type]
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            batch = [self._feed.get()]
            while not self._feed.empty():
                batch.append(self._feed.get_nowait())
            if any(change is None for change in batch) or self.store.closed:
                return
            if any(_relevant(change) for change in batch):
                self.schedule_pending()

    def schedule_pending(self) -> None:
        pods, _, _ = self.store.list("pods", None)
        nodes, _, _ = self.store.list("nodes", None)
        used: dict[str, dict[str, Decimal]] = {}
        pending = []
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node and pod.get("status", {}).get("phase") not in TERMINAL:
                bucket = used.setdefault(node, {})
                for name, value in pod_requests(pod["spec"]).items():
                    bucket[name] = bucket.get(name, Decimal(0)) + value
            elif not node and not pod["metadata"].get("deletionTimestamp"):
                pending.append(pod)
        for pod in sorted(
            pending,
            key=lambda p: (-p["spec"].get("priority", 0), p["metadata"]["creationTimestamp"]),
        ):
            placement = self._decide(pod, nodes, used)
            if placement.node is None:
                self._unschedulable(pod, placement.message)
                continue
            bucket = used.setdefault(placement.node, {})
            for name, value in pod_requests(pod["spec"]).items():
                bucket[name] = bucket.get(name, Decimal(0)) + value
            self._bind(pod, placement.node)

    def _decide(
        self, pod: dict[str, Any], nodes: list[dict[str, Any]], used: dict[str, dict[str, Decimal]]
    ) -> Placement:
        if self.faults.fault_for(pod) == "Unschedulable":
            resource = "nvidia.com/gpu" if "nvidia.com/gpu" in pod_requests(pod["spec"]) else "cpu"
            n = len(nodes)
            return Placement(
                None,
                f"0/{n} nodes are available: {n} Insufficient {resource}. preemption: 0/{n} nodes"
                f" are available: {n} No preemption victims found for incoming pod.",
            )
        namespace = pod["metadata"]["namespace"]
        missing = [
            c
            for c in _claims(pod)
            if self.store.find("persistentvolumeclaims", namespace, c) is None
        ]
        return place(pod, nodes, used, missing)

    def _bind(self, pod: dict[str, Any], node: str) -> None:
        def bind(obj: dict[str, Any]) -> None:
            obj["spec"]["nodeName"] = node
            set_condition(obj, "PodScheduled", "True")

        meta = pod["metadata"]
        bound = self.store.mutate("pods", meta["namespace"], meta["name"], bind, uid=meta["uid"])
        if bound is not None:
            self.events.record(
                bound,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
                component=pod["spec"].get("schedulerName", "default-scheduler"),
            )

    def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        meta = pod["metadata"]
        updated = self.store.mutate(
            "pods",
            meta["namespace"],
            meta["name"],
            lambda obj: set_condition(obj, "PodScheduled", "False", "Unschedulable", message),
        )
        if updated is not None:
            self.events.record(
                updated,
                "Warning",
                "FailedScheduling",
                message,
                component=pod["spec"].get("schedulerName", "default-scheduler"),
            )
