"""The controller-manager's share: PVC binding (Immediate, one directory per claim) and
protection, the default ServiceAccount, and namespace termination."""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path
from typing import Any

from . import errors
from .kinds import KINDS
from .store import Change, Store
from .volumes import claim_dir

PVC_PROTECTION = "kubernetes.io/pvc-protection"


def _claims_in_use(store: Store, namespace: str) -> set[str]:
    pods, _, _ = store.list("pods", namespace)
    return {
        v["persistentVolumeClaim"]["claimName"]
        for pod in pods
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        for v in pod["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    }


class Controllers:
    def __init__(self, store: Store, state_dir: Path) -> None:
        self.store = store
        self.state_dir = state_dir
        self._feed = store.subscribe()
        self._thread = threading.Thread(target=self._loop, name="controllers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._feed.put(None)  # type: ignore[arg-type]
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            change = self._feed.get()
            if change is None:
                return
            self._on_change(change)

    def _on_change(self, change: Change) -> None:
        obj, meta = change.obj, change.obj["metadata"]
        if change.plural == "persistentvolumeclaims":
            if change.type == "ADDED":
                self._bind(obj)
            elif change.type == "DELETED":
                shutil.rmtree(
                    claim_dir(self.state_dir, obj["spec"].get("volumeName", "-")),
                    ignore_errors=True,
                )
            elif meta.get("deletionTimestamp"):
                self._release_claims(meta["namespace"])
        elif change.plural == "pods" and (
            change.type == "DELETED"
            or obj.get("status", {}).get("phase") in ("Succeeded", "Failed")
        ):
            self._release_claims(meta["namespace"])
            self._finish_namespace(meta["namespace"])
        elif change.plural == "namespaces":
            if change.type == "ADDED":
                self._default_service_account(meta["name"])
            elif change.type == "MODIFIED" and obj["status"].get("phase") == "Terminating":
                self._empty_namespace(meta["name"])

    def _bind(self, pvc: dict[str, Any]) -> None:
        meta = pvc["metadata"]
        volume = f"pvc-{meta['uid']}"
        claim_dir(self.state_dir, volume).mkdir(parents=True, exist_ok=True)

        def bind(obj: dict[str, Any]) -> None:
            obj["spec"]["volumeName"] = volume
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            annotations["volume.kubernetes.io/storage-provisioner"] = "simulator.hub/local-dir"
            obj["status"] = {
                "phase": "Bound",
                "accessModes": obj["spec"].get("accessModes", []),
                "capacity": {"storage": obj["spec"]["resources"]["requests"]["storage"]},
            }

        self.store.mutate("persistentvolumeclaims", meta["namespace"], meta["name"], bind)

    def _release_claims(self, namespace: str) -> None:
        """pvc-protection: a claim marked for deletion goes once no live pod uses it."""
        in_use = _claims_in_use(self.store, namespace)
        claims, _, _ = self.store.list("persistentvolumeclaims", namespace)
        for pvc in claims:
            meta = pvc["metadata"]
            if (
                meta.get("deletionTimestamp")
                and meta["name"] not in in_use
                and PVC_PROTECTION in (meta.get("finalizers") or [])
            ):
                finalizers = [f for f in meta["finalizers"] if f != PVC_PROTECTION]
                self.store.patch(
                    "persistentvolumeclaims",
                    namespace,
                    meta["name"],
                    lambda obj, f=finalizers: {
                        **obj,
                        "metadata": {**obj["metadata"], "finalizers": f},
                    },
                )

    def _default_service_account(self, namespace: str) -> None:
        # already there, or the namespace went away meanwhile: both fine
        with contextlib.suppress(errors.ApiError):
            self.store.create("serviceaccounts", namespace, {"metadata": {"name": "default"}})

    def _empty_namespace(self, namespace: str) -> None:
        for plural in KINDS:
            if not KINDS[plural].namespaced or plural == "events":
                continue
            items, _, _ = self.store.list(plural, namespace)
            for item in items:
                try:
                    self.store.delete(plural, namespace, item["metadata"]["name"])
                except errors.ApiError:
                    continue
        self._release_claims(namespace)
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        ns = self.store.find("namespaces", "", namespace)
        if ns is None or ns["status"].get("phase") != "Terminating":
            return
        if (
            self.store.list("pods", namespace)[0]
            or self.store.list("persistentvolumeclaims", namespace)[0]
        ):
            return
        for plural in KINDS:
            if KINDS[plural].namespaced:
                for item in self.store.list(plural, namespace)[0]:
                    self.store.remove(plural, namespace, item["metadata"]["name"])
        self.store.remove("namespaces", "", namespace)
