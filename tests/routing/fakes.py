"""Small real HTTP servers for router tests: a fake hub (the route API plus a
catch-all page), named backends and a WebSocket echo backend. They are real
servers on real ports (http.server / websockets), just tiny."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "router-test-token"
CHUNK = 1 << 20


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def describe(self, who: str) -> bytes:
        seen = {
            "who": who,
            "path": self.path,
            "host": self.headers.get("Host"),
            "xff": self.headers.get("X-Forwarded-For"),
            "xfproto": self.headers.get("X-Forwarded-Proto"),
            "xfhost": self.headers.get("X-Forwarded-Host"),
        }
        return json.dumps(seen).encode()

    def drain_body(self) -> int:
        """Read the request body in chunks (never whole); returns its size."""
        left = int(self.headers.get("Content-Length") or 0)
        total = 0
        while left:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                break
            total += len(chunk)
            left -= len(chunk)
        return total


class Backend(_Quiet):
    """Answers every path with JSON describing what it saw; /big/<n> streams n MiB."""

    name = "backend"

    def do_GET(self) -> None:
        parts = self.path.split("/")
        if "big" in parts:
            size = int(parts[parts.index("big") + 1]) * CHUNK
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * CHUNK
            for _ in range(size // CHUNK):
                self.wfile.write(block)
            return
        self.reply(200, self.describe(self.name), "application/json")

    def do_POST(self) -> None:
        size = self.drain_body()
        self.reply(200, json.dumps({"who": self.name, "received": size}).encode())


def make_backend(name: str) -> type[Backend]:
    return type(f"Backend_{name}", (Backend,), {"name": name})


class Clock:
    """A clock that moves only when a test sets `now`."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class HubState:
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 1
    lookups: list[str] = field(default_factory=list)
    activity: list[dict[str, str]] = field(default_factory=list)
    down: bool = False
    known: set[str] = field(default_factory=set)  # every prefix ever sent
    lock: threading.Lock = field(default_factory=threading.Lock)
    # the table endpoints keep serving this (routes, version): a router's sync lagging
    # behind the hub, deterministically; lookups still see the current routes
    held: tuple[dict[str, dict[str, Any]], int] | None = None

    def hold_table(self) -> None:
        """From now on the table endpoints answer what they answer now."""
        with self.lock:
            self.held = (dict(self.routes), self.version)

    def set_route(self, prefix: str, target: str | None) -> None:
        with self.lock:
            self.known.add(prefix)  # the real hub reports every changed server, even unseen
            if target is None:
                self.routes.pop(prefix, None)
            else:
                parts = prefix.strip("/").split("/")
                self.routes[prefix] = {
                    "target": target,
                    "user": parts[1],
                    "server_name": parts[2] if len(parts) > 2 else "",
                }
            self.version += 1


def make_hub(state: HubState, name: str = "hub") -> type[_Quiet]:
    """A fake hub on STATE (hubs made on one state share a "database"); pages
    and API calls answer who=NAME."""

    class Hub(_Quiet):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if not url.path.startswith("/hub/api/routes"):
                self.reply(200, self.describe(name), "application/json")
                return
            if state.down:
                self.reply(503, b"down")
                return
            if self.headers.get("Authorization") != f"token {TOKEN}":
                self.reply(403, b'{"status": 403, "message": "forbidden"}')
                return
            query = parse_qs(url.query)
            with state.lock:
                routes, version = dict(state.routes), str(state.version)
                held = state.held
            if url.path == "/hub/api/routes/lookup":
                self.lookup(query["path"][0], routes)
                return
            if held is not None:  # a lagging view: the old table, and no changes since
                if "since" in query:
                    body = {"version": str(held[1]), "full": False, "routes": {}}
                    self.reply(200, json.dumps(body).encode(), "application/json")
                    return
                routes, version = dict(held[0]), str(held[1])
            # The fake sends the whole table as its "changes" (re-sending is idempotent)
            # with removed prefixes as null, which is what the contract allows.
            body: dict[str, Any] = {"version": version, "full": "since" not in query}
            if "since" in query:
                body["routes"] = {**{p: None for p in state.known}, **routes}
            else:
                body["routes"] = routes
            state.known.update(routes)
            self.reply(200, json.dumps(body).encode(), "application/json")

        def lookup(self, path: str, routes: dict[str, dict[str, Any]]) -> None:
            state.lookups.append(path)
            parts = [p for p in path.split("/") if p]
            candidates = []
            if len(parts) >= 3:
                candidates.append(f"/user/{parts[1]}/{parts[2]}/")
            if len(parts) >= 2:
                candidates.append(f"/user/{parts[1]}/")
            for prefix in candidates:
                if prefix in routes:
                    body = {"prefix": prefix, "route": routes[prefix]}
                    self.reply(200, json.dumps(body).encode(), "application/json")
                    return
            self.reply(404, b'{"status": 404, "message": "no route"}', "application/json")

        def do_POST(self) -> None:
            if self.path == "/hub/api/routes/activity":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                state.activity.append(json.loads(body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = self.drain_body()
            self.reply(200, json.dumps({"who": name, "received": size}).encode())

    return Hub


class Running:
    """A server thread; .url and .stop()."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class EchoWebSocket:
    """A websockets echo server in its own thread and loop."""

    def __init__(self) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def echo(ws: Any) -> None:
            # ".../sink": answer each message with its size (one-way bulk traffic)
            sink = ws.request.path.endswith("/sink")
            async for message in ws:
                await ws.send(str(len(message)) if sink else message)

        async def main() -> None:
            self.server = await serve(echo, "127.0.0.1", 0, max_size=None)
            self.port = next(iter(self.server.sockets)).getsockname()[1]
            ready.set()
            await self.server.serve_forever()

        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(main()), daemon=True
        )
        self.thread.start()
        ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)


class RawHub:
    """A listening socket whose connections are served by HANDLE(conn, index)."""

    def __init__(self, handle: Callable[[socket.socket, int], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._handle = handle
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(
                target=self._handle, args=(conn, self.connections), daemon=True
            ).start()

    def close(self) -> None:
        self.sock.close()
