"""The HTTP side: kube-apiserver's REST protocol for core/v1, plus the simulator's own
/simulator endpoints (fault injection). One thread per connection; watches stream chunked
JSON lines exactly as the apiserver does, so the official clients' watch loops work."""

from __future__ import annotations

import base64
import json
import logging
import random
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import errors
from .kinds import KINDS, SUBRESOURCES
from .patches import apply_patch
from .selectors import matches_fields, matches_labels, parse_field_selector, parse_label_selector
from .store import Change
from .tables import build_table, wants_table

if TYPE_CHECKING:
    from .simulator import Simulator

log = logging.getLogger("k8s_simulator.api")

VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-simulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _resource_list() -> dict[str, Any]:
    resources = []
    for kind in KINDS.values():
        resources.append(
            {
                "name": kind.plural,
                "singularName": kind.kind.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": list(kind.verbs),
                "shortNames": list(kind.short_names),
            }
        )
        for sub in SUBRESOURCES.get(kind.plural, ()):
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            resources.append(
                {
                    "name": f"{kind.plural}/{sub}",
                    "singularName": "",
                    "namespaced": True,
                    "kind": kind.kind,
                    "verbs": verbs,
                }
            )
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool, as the apiserver parses


def _encode_continue(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError) as error:
        raise errors.bad_request("continue key is not valid: illegal base64 data") from error
    return namespace, name


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiServer

    # --- plumbing ----------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes: without this, Nagle + delayed ACK
        # cost ~40 ms per response on a keep-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", "simulator")
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise errors.bad_request(
                f"the body of the request could not be decoded: {error}"
            ) from error

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
            if not self._authorized(url.path):
                raise errors.ApiError(401, "Unauthorized", "Unauthorized")
            self._route(method, url.path.rstrip("/") or "/", query, body)
        except errors.ApiError as error:
            self._send_json(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _authorized(self, path: str) -> bool:
        if path in ("/healthz", "/livez", "/readyz"):
            return True
        given = self.headers.get("Authorization")
        if given is None and self.server.simulator.allow_anonymous:
            return True  # kubectl sends no bearer token over plain HTTP
        return given == f"Bearer {self.server.simulator.token}"

    do_GET = lambda self: self._dispatch("GET")  # noqa: E731
    do_POST = lambda self: self._dispatch("POST")  # noqa: E731
    do_PUT = lambda self: self._dispatch("PUT")  # noqa: E731
    do_PATCH = lambda self: self._dispatch("PATCH")  # noqa: E731
    do_DELETE = lambda self: self._dispatch("DELETE")  # noqa: E731

    # --- routing -----------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        simulator = self.server.simulator
        if path in ("/healthz", "/livez", "/readyz"):
            self._send_text(200, b"ok")
        elif path == "/version":
            self._send_json(200, VERSION)
        elif path == "/api":
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": simulator.address}
                    ],
                },
            )
        elif path == "/apis":
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif path == "/api/v1":
            self._send_json(200, _resource_list())
        elif path.startswith("/api/v1/"):
            self._route_core(method, path.split("/")[3:], query, body)
        elif path.startswith("/simulator"):
            code, reply = simulator.side_endpoint(method, path.split("/")[2:], body)
            self._send_json(code, reply)
        else:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )

    def _route_core(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> None:
        namespace: str | None = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        plural = parts[0]
        kind = KINDS.get(plural)
        if kind is None or (namespace is not None and not kind.namespaced) or len(parts) > 3:
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else ""
        if sub and sub not in SUBRESOURCES.get(plural, ()):
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        scope = "" if not kind.namespaced else namespace
        if name is None:
            self._collection(method, plural, scope, query, body)
        else:
            self._item(method, plural, scope or "", name, sub, query, body)

    def _collection(
        self, method: str, plural: str, namespace: str | None, query: dict[str, str], body: Any
    ) -> None:
        store = self.server.simulator.store
        if method == "POST":
            if namespace is None:
                raise errors.ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be a JSON object")
            self._send_json(201, store.create(plural, namespace, body))
            return
        if method == "DELETE" and namespace is not None:
            self._delete_collection(plural, namespace, query, body or {})
            return
        if method != "GET":
            raise errors.ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(plural, query.get("fieldSelector"))
        if query.get("watch") in TRUE:
            self._watch(plural, namespace, labels, fields, query)
            return
        after = _decode_continue(query["continue"]) if query.get("continue") else None
        try:
            limit = int(query.get("limit") or 0)
        except ValueError as error:
            raise errors.bad_request(f"invalid limit {query['limit']!r}") from error
        items, rv, resume = store.list(plural, namespace, labels, fields, limit=limit, after=after)
        if wants_table(self.headers.get("Accept", "")):
            self._send_json(200, build_table(plural, items, str(rv)))
            return
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if resume is not None:
            metadata["continue"] = _encode_continue(resume)
            metadata["remainingItemCount"] = len(
                store.list(plural, namespace, labels, fields, after=resume)[0]
            )
        self._send_json(
            200,
            {
                "kind": KINDS[plural].kind + "List",
                "apiVersion": "v1",
                "metadata": metadata,
                "items": items,
            },
        )

    def _delete_collection(
        self, plural: str, namespace: str, query: dict[str, str], options: dict[str, Any]
    ) -> None:
        store = self.server.simulator.store
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(plural, query.get("fieldSelector"))
        grace = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        items, rv, _ = store.list(plural, namespace, labels, fields)
        deleted = []
        for obj in items:
            try:
                deleted.append(
                    store.delete(
                        plural,
                        namespace,
                        obj["metadata"]["name"],
                        grace=None if grace in (None, "") else int(grace),
                    )
                )
            except errors.ApiError:
                continue  # went away meanwhile
        kind = KINDS[plural].kind + "List"
        self._send_json(
            200,
            {
                "kind": kind,
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(rv)},
                "items": deleted,
            },
        )

    def _item(
        self,
        method: str,
        plural: str,
        namespace: str,
        name: str,
        sub: str,
        query: dict[str, str],
        body: Any,
    ) -> None:
        simulator = self.server.simulator
        store = simulator.store
        if sub == "log":
            self._send_text(
                200, simulator.kubelet.read_log(store.get(plural, namespace, name), query)
            )
        elif method == "GET":
            obj = store.get(plural, namespace, name)
            if wants_table(self.headers.get("Accept", "")):
                obj = build_table(plural, [obj], obj["metadata"]["resourceVersion"])
            self._send_json(200, obj)
        elif method == "PUT":
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be a JSON object")
            self._send_json(200, store.replace(plural, namespace, name, body, subresource=sub))
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type", "")
            patched = store.patch(
                plural,
                namespace,
                name,
                lambda obj: apply_patch(content_type, obj, body),
                subresource=sub,
            )
            self._send_json(200, patched)
        elif method == "DELETE":
            self._delete(plural, namespace, name, query, body or {})
        else:
            raise errors.ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )

    def _delete(
        self, plural: str, namespace: str, name: str, query: dict[str, str], options: dict[str, Any]
    ) -> None:
        grace = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        result = self.server.simulator.store.delete(
            plural,
            namespace,
            name,
            grace=None if grace in (None, "") else int(grace),
            preconditions=options.get("preconditions"),
        )
        if plural in ("pods", "persistentvolumeclaims", "namespaces", "nodes"):
            self._send_json(200, result)  # these registries answer with the object itself
            return
        self._send_json(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": plural, "uid": result["metadata"]["uid"]},
            },
        )

    # --- watch -------------------------------------------------------------------------

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, event_type: str, obj: dict[str, Any]) -> None:
        data = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode()
        data += b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _bookmark(self, plural: str, rv: int, *, initial_end: bool = False) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._send_event(
            "BOOKMARK", {"kind": KINDS[plural].kind, "apiVersion": "v1", "metadata": metadata}
        )

    def _watch(self, plural, namespace, labels, fields, query) -> None:
        simulator = self.server.simulator
        store = simulator.store
        bookmarks = query.get("allowWatchBookmarks") in TRUE
        timeout = float(query.get("timeoutSeconds") or random.uniform(1800, 3600))
        deadline = time.monotonic() + timeout
        requested = query.get("resourceVersion", "")
        initial = requested in ("", "0") or query.get("sendInitialEvents") in TRUE
        self._start_stream()
        if initial:
            items, cursor, _ = store.list(plural, namespace, labels, fields)
            for obj in items:
                self._send_event("ADDED", obj)
            if query.get("sendInitialEvents") in TRUE and bookmarks:
                self._bookmark(plural, cursor, initial_end=True)
        else:
            try:
                cursor = int(requested)
                store.check_not_expired(cursor)
            except ValueError:
                cursor = -1
            except errors.ApiError as error:
                self._send_event("ERROR", error.status())
                cursor = -1
            if cursor < 0:
                self._end_stream()
                return
        next_bookmark = time.monotonic() + simulator.bookmark_interval
        while not store.closed and not simulator.stopping:
            now = time.monotonic()
            if now >= deadline:
                if bookmarks:
                    self._bookmark(plural, cursor)
                break
            if bookmarks and now >= next_bookmark:
                self._bookmark(plural, cursor)
                next_bookmark = now + simulator.bookmark_interval
            wait = min(deadline, next_bookmark if bookmarks else deadline) - now
            try:
                changes = store.changes_after(cursor, min(wait, 1.0))
            except errors.ApiError as error:
                self._send_event("ERROR", error.status())
                break
            for change in changes:
                cursor = change.rv
                event = _watch_event(change, plural, namespace, labels, fields)
                if event is not None:
                    self._send_event(*event)
        self._end_stream()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _watch_event(change: Change, plural, namespace, labels, fields) -> tuple[str, dict] | None:
    """What one watcher sees of CHANGE: objects entering/leaving its selector are ADDED/DELETED."""
    if change.plural != plural:
        return None
    if namespace is not None and change.obj["metadata"].get("namespace", "") != namespace:
        return None

    def selected(obj: dict | None) -> bool:
        return (
            obj is not None
            and matches_labels(labels, obj["metadata"].get("labels"))
            and matches_fields(fields, obj)
        )

    if change.type == "DELETED":
        return ("DELETED", change.obj) if selected(change.obj) else None
    now_in, was_in = selected(change.obj), selected(change.old)
    if now_in and was_in:
        return "MODIFIED", change.obj
    if now_in:
        return "ADDED", change.obj
    if was_in:
        return "DELETED", change.obj
    return None


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        super().__init__(address, Handler)
        self.simulator = simulator


__all__ = ["ApiServer", "HTTPStatus"]
