"""One shared watch per process and kind of object: a local copy of the
namespace's pods (or events), kept current by list + watch, like client-go's
reflector and KubeSpawner's.

Every spawn, stop and poll in a worker reads this copy instead of asking the
API server: 100 servers starting at once cost one watch connection, not 100
polls. The copy starts with a list, follows the watch from the list's
resourceVersion (with bookmarks, so a quiet namespace keeps a fresh version),
and lists again when the server answers 410 Gone (the version is too old) or
the connection drops. Objects are kept as the API's JSON (dicts): decoding
into the client's model classes would cost more CPU than all the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

ListCall = Callable[..., Any]  # e.g. CoreV1Api.list_namespaced_pod


class Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class Reflector:
    """Keeps `objects` (name -> object) equal to what LIST_CALL returns for
    NAMESPACE and SELECTOR; `changed` is notified after every change."""

    def __init__(
        self,
        list_call: ListCall,
        namespace: str,
        *,
        selector: str = "",
        kind: str = "pods",
        key: Callable[[Mapping[str, Any]], str] | None = None,
        max_objects: int | None = None,
        changed: threading.Condition | None = None,
        index: Callable[[Mapping[str, Any]], str] | None = None,
    ) -> None:
        self.list_call = list_call
        self.namespace = namespace
        self.selector = selector
        self.kind = kind
        self.key = key or (lambda obj: obj["metadata"]["name"])
        self.max_objects = max_objects
        self.objects: dict[str, dict[str, Any]] = {}
        # INDEX(object) -> {key: object}, e.g. events by the uid they are about
        self.index = index
        self.indexed: dict[str, dict[str, dict[str, Any]]] = {}
        # may be shared by several reflectors, so one waiter wakes for either
        self.changed = changed or threading.Condition()
        self.generation = 0  # bumped on every change, for waiters
        self.synced = threading.Event()
        self.resource_version = ""
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"reflector-{kind}", daemon=True)

    def start(self) -> Reflector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            # unblocks the watch's read; closing a half-read stream may raise anything
            with contextlib.suppress(Exception):
                response.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def get(self, name: str) -> dict[str, Any] | None:
        with self.changed:
            return self.objects.get(name)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.changed:
            return list(self.objects.values())

    def by_index(self, value: str) -> list[dict[str, Any]]:
        with self.changed:
            return list(self.indexed.get(value, {}).values())

    def wait(self, generation: int, timeout: float) -> int:
        """Block until something changed after GENERATION (or TIMEOUT); the
        current generation."""
        with self.changed:
            self.changed.wait_for(lambda: self.generation != generation, timeout=timeout)
            return self.generation

    # --- the loop -----------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._list()
                backoff = 0.1
                while not self._stopping.is_set():
                    self._watch()
            except Gone:
                log.info("%s watch expired (410): listing again", self.kind)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("%s watch failed (%s); retrying in %.1fs", self.kind, exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"_preload_content": False}
        if self.selector:
            kwargs["label_selector"] = self.selector
        return kwargs

    def _list(self) -> None:
        response = self.list_call(self.namespace, **self._kwargs(), _request_timeout=30)
        body = json.loads(response.data)
        items = {self.key(obj): obj for obj in body.get("items") or []}
        with self.changed:
            self.objects = {}
            self.indexed = {}
            for key, obj in items.items():
                self._put(key, obj)
            self.resource_version = body["metadata"].get("resourceVersion", "")
            self._bump()
        self.synced.set()

    def _watch(self) -> None:
        seconds = random.randint(240, 300)  # spread reconnects of many processes
        response = self.list_call(
            self.namespace,
            **self._kwargs(),
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self.resource_version,
            timeout_seconds=seconds,
            _request_timeout=(10, seconds + 30),
        )
        self._response = response
        try:
            for line in iter_resp_lines(response):
                if self._stopping.is_set():
                    return
                if line:
                    self._apply(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiException(status=obj.get("code"), reason=obj.get("message"))
        version = (obj.get("metadata") or {}).get("resourceVersion", "")
        with self.changed:
            if kind in ("ADDED", "MODIFIED"):
                self._put(self.key(obj), obj)
                self._trim()
            elif kind == "DELETED":
                self._drop(self.key(obj))
            if version:
                self.resource_version = version
            if kind != "BOOKMARK":
                self._bump()

    def _trim(self) -> None:
        if self.max_objects and len(self.objects) > self.max_objects:
            for name in list(self.objects)[: len(self.objects) - self.max_objects]:
                self._drop(name)

    def _put(self, key: str, obj: dict[str, Any]) -> None:
        self._drop(key)
        self.objects[key] = obj
        if self.index is not None:
            self.indexed.setdefault(self.index(obj), {})[key] = obj

    def _drop(self, key: str) -> None:
        old = self.objects.pop(key, None)
        if old is not None and self.index is not None:
            bucket = self.indexed.get(self.index(old), {})
            bucket.pop(key, None)
            if not bucket:
                self.indexed.pop(self.index(old), None)

    def _bump(self) -> None:
        self.generation += 1
        self.changed.notify_all()


def wait_until(reflector: Reflector, predicate: Callable[[], Any], *, timeout: float) -> Any:
    """PREDICATE's first truthy value, re-checked after each change; None at
    TIMEOUT. Wakes at least once a second, for callers that watch a clock."""
    deadline = time.monotonic() + timeout
    generation = reflector.generation
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        generation = reflector.wait(generation, min(left, 1.0))
