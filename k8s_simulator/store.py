"""The object store: what etcd + the apiserver's registry do for the simulator.

One lock, one global resourceVersion that only grows, a bounded history of changes that
watches read from (older than the history window -> 410 Expired), and queues that tell the
simulated controllers (scheduler, kubelet, PVC binder) about every change."""

from __future__ import annotations

import copy
import itertools
import queue
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import errors
from .kinds import DEFAULTERS, KINDS, default_service
from .selectors import FieldRequirement, Requirement, matches_fields, matches_labels
from .validation import validate, validate_pod_update

Obj = dict[str, Any]


def now_iso(offset: float = 0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    plural: str
    obj: Obj  # never mutated once committed
    old: Obj | None


def key_of(obj: Obj) -> tuple[str, str]:
    metadata = obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


class Store:
    def __init__(self, *, history: int = 1000) -> None:
        self._cond = threading.Condition()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in KINDS}
        self._rv = 0
        self._history: deque[Change] = deque(maxlen=history)
        self._listeners: list[queue.Queue[Change]] = []
        self._service_ips = itertools.count(10)
        self.closed = False

    # --- reads -------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def get(self, plural: str, namespace: str, name: str) -> Obj:
        with self._cond:
            obj = self._objects[plural].get((namespace, name))
            if obj is None:
                raise errors.not_found(plural, name)
            return copy.deepcopy(obj)

    def find(self, plural: str, namespace: str, name: str) -> Obj | None:
        with self._cond:
            obj = self._objects[plural].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        plural: str,
        namespace: str | None,
        labels: list[Requirement] | None = None,
        fields: list[FieldRequirement] | None = None,
        *,
        limit: int = 0,
        after: tuple[str, str] | None = None,
    ) -> tuple[list[Obj], int, tuple[str, str] | None]:
        """Matching objects sorted by (namespace, name), the store's rv, and where to resume."""
        with self._cond:
            items = [
                obj
                for key, obj in sorted(self._objects[plural].items())
                if (namespace is None or key[0] == namespace)
                and (after is None or key > after)
                and matches_labels(labels or [], obj["metadata"].get("labels"))
                and matches_fields(fields or [], obj)
            ]
            resume = None
            if limit and len(items) > limit:
                items = items[:limit]
                resume = key_of(items[-1])
            return copy.deepcopy(items), self._rv, resume

    # --- watch support -----------------------------------------------------------------

    def changes_after(self, cursor: int, timeout: float) -> list[Change]:
        """Changes with rv > CURSOR, waiting up to TIMEOUT for one; 410 if some are gone."""
        with self._cond:
            self._cond.wait_for(lambda: self._rv > cursor or self.closed, timeout)
            if self._rv <= cursor:
                return []
            if not self._history or self._history[0].rv > cursor + 1:
                oldest = self._history[0].rv - 1 if self._history else self._rv
                raise errors.expired(cursor, oldest)
            found = []
            for change in reversed(self._history):
                if change.rv <= cursor:
                    break
                found.append(change)
            return found[::-1]

    def check_not_expired(self, rv: int) -> None:
        with self._cond:
            if rv < self._rv and (not self._history or self._history[0].rv > rv + 1):
                oldest = self._history[0].rv - 1 if self._history else self._rv
                raise errors.expired(rv, oldest)

    def snapshot(self, plurals: tuple[str, ...]) -> dict[str, Any]:
        with self._cond:
            return {
                "resourceVersion": self._rv,
                "objects": {p: copy.deepcopy(list(self._objects[p].values())) for p in plurals},
            }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a snapshot into an empty store; the watch history starts empty (compacted)."""
        with self._cond:
            self._rv = int(snapshot["resourceVersion"])
            for plural, items in snapshot["objects"].items():
                for obj in items:
                    self._objects[plural][key_of(obj)] = obj

    def subscribe(self) -> queue.Queue[Change]:
        """A queue receiving every committed change (for the simulated controllers)."""
        feed: queue.Queue[Change] = queue.Queue()
        with self._cond:
            self._listeners.append(feed)
        return feed

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # --- writes ------------------------------------------------------------------------

    def _commit(self, plural: str, type_: str, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        if type_ != "DELETED":
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._objects[plural][key_of(obj)] = obj
        else:
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._objects[plural].pop(key_of(obj), None)
        change = Change(self._rv, type_, plural, obj, old)
        self._history.append(change)
        for feed in self._listeners:
            feed.put(change)
        self._cond.notify_all()
        return copy.deepcopy(obj)

    def create(self, plural: str, namespace: str, body: Obj) -> Obj:
        kind = KINDS[plural]
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = "v1", kind.kind
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
        if kind.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on"
                    " the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        validate(kind.kind, plural, obj)
        for field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            metadata.pop(field, None)
        with self._cond:
            if kind.namespaced:
                ns = self._objects["namespaces"].get(("", namespace))
                if ns is None:
                    raise errors.not_found("namespaces", namespace)
                if ns["status"].get("phase") == "Terminating" and plural != "events":
                    raise errors.ApiError(
                        403,
                        "Forbidden",
                        f'{plural} "{metadata["name"]}" is forbidden: unable to create new content'
                        f" in namespace {namespace} because it is being terminated",
                    )
            if key_of(obj) in self._objects[plural]:
                raise errors.already_exists(plural, metadata["name"])
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now_iso()
            if plural in DEFAULTERS:
                DEFAULTERS[plural](obj)
            elif plural == "services":
                n = next(self._service_ips)
                default_service(obj, f"127.96.{n // 250}.{n % 250 + 1}")
            return self._commit(plural, "ADDED", obj, None)

    def replace(
        self, plural: str, namespace: str, name: str, body: Obj, *, subresource: str = ""
    ) -> Obj:
        """PUT: optimistic concurrency on metadata.resourceVersion (409 Conflict)."""
        with self._cond:
            old = self._objects[plural].get((namespace, name))
            if old is None:
                raise errors.not_found(plural, name)
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise errors.conflict(plural, name)
            return self._update_locked(plural, old, copy.deepcopy(body), subresource)

    def patch(
        self,
        plural: str,
        namespace: str,
        name: str,
        apply: Callable[[Obj], Obj],
        *,
        subresource: str = "",
    ) -> Obj:
        with self._cond:
            old = self._objects[plural].get((namespace, name))
            if old is None:
                raise errors.not_found(plural, name)
            new = apply(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise errors.bad_request("the patched object is not an object")
            wanted = (new.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise errors.conflict(plural, name)
            return self._update_locked(plural, old, new, subresource)

    def _update_locked(self, plural: str, old: Obj, new: Obj, subresource: str) -> Obj:
        kind = KINDS[plural]
        name = old["metadata"]["name"]
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        else:
            metadata = new.setdefault("metadata", {})
            if metadata.get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({metadata['name']}) does not match the name on the"
                    f" URL ({name})"
                )
            for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
                if field in old["metadata"]:
                    metadata[field] = old["metadata"][field]
            if "status" in old:
                new["status"] = old["status"]  # status changes only through /status
            new["apiVersion"], new["kind"] = "v1", kind.kind
            validate(kind.kind, plural, new)
            if plural == "pods":
                validate_pod_update(old, new)
        if new == old:
            return copy.deepcopy(old)  # a no-op write does not bump resourceVersion
        finalized = new["metadata"].get("deletionTimestamp") and not new["metadata"].get(
            "finalizers"
        )
        if finalized and plural != "pods":
            return self._commit(plural, "DELETED", new, old)
        return self._commit(plural, "MODIFIED", new, old)

    def mutate(
        self,
        plural: str,
        namespace: str,
        name: str,
        change: Callable[[Obj], None],
        *,
        uid: str | None = None,
    ) -> Obj | None:
        """Controllers' write path: CHANGE edits a copy in place (no validation);
        None if gone, or if UID is given and the object by that name is another
        one now (a pod deleted and created again under its name: the kubelet's
        status writes carry the pod's uid as a precondition)."""
        with self._cond:
            old = self._objects[plural].get((namespace, name))
            if old is None or (uid is not None and old["metadata"].get("uid") != uid):
                return None
            new = copy.deepcopy(old)
            change(new)
            if new == old:
                return copy.deepcopy(old)
            return self._commit(plural, "MODIFIED", new, old)

    def remove(self, plural: str, namespace: str, name: str, uid: str | None = None) -> None:
        """Drop the object now (the end of a graceful delete)."""
        with self._cond:
            old = self._objects[plural].get((namespace, name))
            if old is not None and (uid is None or old["metadata"]["uid"] == uid):
                self._commit(plural, "DELETED", old, old)

    def delete(
        self,
        plural: str,
        namespace: str,
        name: str,
        *,
        grace: int | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        """Delete like the registry: graceful for scheduled pods, held by finalizers."""
        with self._cond:
            old = self._objects[plural].get((namespace, name))
            if old is None:
                raise errors.not_found(plural, name)
            self._check_preconditions(plural, old, preconditions or {})
            if plural == "pods":
                grace = self._pod_grace(old, grace)
                if grace > 0:
                    return self._mark_deleting(plural, old, grace)
            if old["metadata"].get("finalizers") or plural == "namespaces":
                return self._mark_deleting(plural, old, 0)
            return self._commit(plural, "DELETED", old, old)

    @staticmethod
    def _check_preconditions(plural: str, obj: Obj, preconditions: dict[str, str]) -> None:
        for field in ("uid", "resourceVersion"):
            wanted = preconditions.get(field)
            actual = obj["metadata"][field]
            if wanted and wanted != actual:
                raise errors.ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{obj["metadata"]["name"]}":'
                    f" Precondition failed: {field[0].upper()}{field[1:]} in precondition:"
                    f" {wanted}, {field[0].upper()}{field[1:]} in object meta: {actual}",
                )

    @staticmethod
    def _pod_grace(pod: Obj, grace: int | None) -> int:
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        unscheduled = not pod["spec"].get("nodeName")
        finished = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        return 0 if unscheduled or finished else max(grace, 0)

    def _mark_deleting(self, plural: str, old: Obj, grace: int) -> Obj:
        metadata = old["metadata"]
        current = metadata.get("deletionGracePeriodSeconds")
        if metadata.get("deletionTimestamp") and (current is None or current <= grace):
            return copy.deepcopy(old)  # already going, and not sooner
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now_iso(grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        if plural == "namespaces":
            new["status"]["phase"] = "Terminating"
        return self._commit(plural, "MODIFIED", new, old)
