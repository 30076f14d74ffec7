"""core/v1 Events as the scheduler and kubelet record them (same reason/message -> count+1)."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from . import errors
from .store import Store, now_iso


class EventRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}

    def record(
        self,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        field_path: str = "",
    ) -> None:
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        key = (metadata["uid"], reason, message, component)
        with self._lock:
            if key in self._seen:
                ns, name = self._seen[key]
                if self.store.mutate("events", ns, name, self._repeat) is not None:
                    return
            name = f"{metadata['name']}.{secrets.token_hex(8)}"
            now = now_iso()
            event = {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "kind": involved.get("kind", "Pod"),
                    "namespace": metadata.get("namespace", ""),
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "apiVersion": "v1",
                    "resourceVersion": metadata.get("resourceVersion", ""),
                    **({"fieldPath": field_path} if field_path else {}),
                },
                "reason": reason,
                "message": message,
                "source": {"component": component, **({"host": host} if host else {})},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": type_,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host,
            }
            try:
                self.store.create("events", namespace, event)
            except errors.ApiError:
                return  # the namespace is gone: nobody can read this event any more
            self._seen[key] = (namespace, name)

    @staticmethod
    def _repeat(event: dict[str, Any]) -> None:
        event["count"] = event.get("count", 1) + 1
        event["lastTimestamp"] = now_iso()
