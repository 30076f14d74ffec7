"""What survives a simulator restart: namespaces, PVCs (and so which directory is whose),
secrets, configmaps, services and serviceaccounts, written to STATE/objects.json.

Pods and events do not: a restarted simulator is a cluster whose node processes all died and
whose pods were cleaned up, so a client reconciling against it sees its pods gone."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .store import Store

PERSISTED = (
    "namespaces",
    "persistentvolumeclaims",
    "secrets",
    "configmaps",
    "services",
    "serviceaccounts",
)


def load(path: Path) -> dict[str, Any] | None:
    """The saved snapshot, or None; a damaged file is an error, not a silent fresh start."""
    if not path.exists():
        return None
    try:
        snapshot = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not a simulator snapshot ({error}); move it away") from error
    if not isinstance(snapshot, dict) or "objects" not in snapshot:
        raise ValueError(f"{path}: not a simulator snapshot; move it away")
    return snapshot


class Saver:
    """Writes the snapshot after every change to a persisted kind (batched)."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path
        self._feed = store.subscribe()
        self._thread = threading.Thread(target=self._loop, name="saver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._feed.put(None)  # type: ignore[arg-type]
        self._thread.join(timeout=5)
        self.save()

    def _loop(self) -> None:
        while True:
            batch = [self._feed.get()]
            while not self._feed.empty():
                batch.append(self._feed.get_nowait())
            if any(change is None for change in batch):
                return
            if any(change.plural in PERSISTED for change in batch):
                self.save()

    def save(self) -> None:
        snapshot = self.store.snapshot(PERSISTED)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(snapshot))
        partial.replace(self.path)
