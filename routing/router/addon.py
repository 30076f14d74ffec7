"""RouterAddon: the one mitmproxy add-on of the router.

It picks the upstream in `requestheaders` (before any body byte is read),
streams bodies both ways, forgets WebSocket messages once forwarded, and
counts per-route activity. It also answers mitmproxy's `next_layer` question
with a fixed plain-HTTP layer, so the stock NextLayer add-on is not needed.

mitmproxy 11.0.2 specifics relied on (pinned in requirements.txt, covered by
tests/routing/test_mitmproxy_pins.py):
- `flow.request.data.host/port/scheme` set directly do not touch the Host
  header (the `.host` setter would rewrite it, Request._update_host_and_authority);
- with `keep_host_header` and `connection_strategy=lazy`, reverse mode opens
  the upstream connection only after `requestheaders` chose the address;
- `flow.websocket.messages` is appended to before `websocket_message` runs and
  is not read again by the layer afterwards, so clearing it there is safe."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import layer, layers, server_hooks
from mitmproxy.proxy.layers.http import HTTPMode

from routing.router.client import RouteSync
from routing.router.hubs import HubPool
from routing.router.limits import Limits
from routing.router.table import Classified, PathKind, Route, classify

_ROUTE_KEY = "router.prefix"
_HUB_KEY = "router.hub"  # set on flows sent to the hub


class Upstream:
    """Where a hub is (the default upstream)."""

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.scheme, self.host, self.port = scheme, host, port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def _pool(upstreams: Upstream | HubPool[Upstream]) -> HubPool[Upstream]:
    return upstreams if isinstance(upstreams, HubPool) else HubPool([upstreams])


class RouterAddon:
    def __init__(
        self,
        sync: RouteSync,
        hub: Upstream | HubPool[Upstream],
        *,
        connect_timeout: float = Limits.connect_timeout,
        streams: Upstream | HubPool[Upstream] | None = None,
    ) -> None:
        self.sync = sync
        self.table = sync.table
        self.hubs = _pool(hub)
        self.streams = _pool(streams or hub)  # where progress streams go
        self.connect_timeout = connect_timeout
        self._targets: dict[tuple[str, int], Route] = {}  # address -> route it was for

    # --- upstream connections (mitmproxy's public server_connect hook) --------------

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Before mitmproxy connects to a server: make sure it answers, within the
        connect timeout. A route's target that refuses may be a stale route (the
        server restarted on a new port since the last sync): look it up again at
        the hub and connect to the new target instead, as the relay does. What
        cannot be reached is refused here, and mitmproxy answers 502."""
        server = data.server
        address = server.address
        why = await self._reachable(address)
        found = self._hub_at(address)
        if why is None:
            if found is not None:
                found[0].answered(found[1])
            return
        if found is not None:  # a hub: the next one of its pool that answers
            pool, hub = found
            nxt = pool.refused(hub)
            while nxt is not None:
                if await self._reachable(nxt.address) is None:
                    pool.answered(nxt)
                    server.address = nxt.address
                    return
                nxt = pool.refused(nxt)
            server.error = f"cannot reach the hub at {address[0]}:{address[1]}: {why}"
            return
        stale = self._targets.get(address)
        if stale is not None:
            route = await self.sync.recheck(stale)
            fresh = (route.host, route.port) if route is not None else None
            if route is not None and route.scheme == stale.scheme and fresh != address:
                again = await self._reachable(fresh)
                if again is None:
                    server.address = fresh
                    self._targets[fresh] = route
                    return
                why = again
            elif route is None:
                why = f"{why}; the hub has no server for {stale.prefix} now"
        server.error = f"cannot reach {address[0]}:{address[1]}: {why}"

    def _hub_at(self, address: tuple[str, int]) -> tuple[HubPool[Upstream], Upstream] | None:
        """The pool and hub (or stream server) at ADDRESS; None for a user's server."""
        for pool in (self.hubs, self.streams):
            for upstream in pool.hubs:
                if upstream.address == address:
                    return pool, upstream
        return None

    async def _reachable(self, address: tuple[str, int]) -> str | None:
        """None when ADDRESS accepts a connection in time, else why not."""
        try:
            connecting = asyncio.open_connection(*address)
            _, writer = await asyncio.wait_for(connecting, self.connect_timeout)
        except TimeoutError:
            return f"connect timed out after {self.connect_timeout:g} s"
        except OSError as exc:
            return exc.strerror or str(exc)
        writer.close()
        return None

    # --- connection setup -------------------------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Plain HTTP/1 in reverse mode: the only protocol the public port speaks."""
        if nextlayer.layer is None and len(nextlayer.context.layers) == 1:
            nextlayer.layer = layers.HttpLayer(nextlayer.context, HTTPMode.transparent)

    # --- per request (hot path: no logging, two dict lookups) -----------------------

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        where = classify(flow.request.path)
        if where.kind == PathKind.HUB:
            self._send_to_hub(flow, rewrite=False)
            return None
        if where.kind == PathKind.STREAM:
            self._send_to_hub(flow, rewrite=False, upstream=self.streams.current())
            return None
        if where.kind == PathKind.BAD:
            flow.response = http.Response.make(
                400, f"Bad request path: {where.reason}\n", {"Content-Type": "text/plain"}
            )
            return None
        route = self.table.lookup(where.user, where.segment)
        if route is None:
            return self._resolve_then_send(flow, where)
        self._send_to_route(flow, route)
        return None

    async def _resolve_then_send(self, flow: http.HTTPFlow, where: Classified) -> None:
        path = flow.request.path.split("?", 1)[0]
        route = await self.sync.resolve(where.user, where.segment, path, method=flow.request.method)
        if route is None:
            self._send_to_hub(flow, rewrite=True)
        else:
            self._send_to_route(flow, route)

    def _send_to_route(self, flow: http.HTTPFlow, route: Route) -> None:
        data = flow.request.data
        data.scheme, data.host, data.port = route.scheme.encode(), route.host, route.port
        flow.metadata[_ROUTE_KEY] = route.prefix
        targets = self._targets
        if targets.get((route.host, route.port)) is not route:
            if len(targets) > 10_000:
                targets.clear()
            targets[(route.host, route.port)] = route
        self.sync.touch(route.prefix)
        self._forwarded(flow)

    def _send_to_hub(
        self, flow: http.HTTPFlow, *, rewrite: bool, upstream: Upstream | None = None
    ) -> None:
        request = flow.request
        data = request.data
        hub = upstream or self.hubs.current()
        data.scheme, data.host, data.port = hub.scheme.encode(), hub.host, hub.port
        flow.metadata[_HUB_KEY] = True
        if rewrite:  # /user/<name>/... without a route: the hub's "not running" pages
            request.path = "/hub" + request.path
        self._forwarded(flow)

    @staticmethod
    def _forwarded(flow: http.HTTPFlow) -> None:
        """X-Forwarded-* from what the router saw; client-sent values are replaced."""
        request = flow.request
        client = flow.client_conn
        headers = request.headers
        headers["X-Forwarded-For"] = client.peername[0] if client.peername else ""
        headers["X-Forwarded-Proto"] = "https" if client.tls_established else "http"
        headers["X-Forwarded-Host"] = request.host_header or ""
        request.stream = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is not None:
            response.stream = True
            if 300 <= response.status_code < 400 and _HUB_KEY in flow.metadata:
                self._hub_redirected(response)

    def _hub_redirected(self, response: http.Response) -> None:
        self.sync.hub_redirected(response.headers.get("Location", ""))

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        # mitmproxy keeps every message of a live socket otherwise (unbounded RSS).
        websocket = flow.websocket
        if websocket is not None:
            websocket.messages.clear()
        prefix: Any = flow.metadata.get(_ROUTE_KEY)
        if prefix is not None:
            self.sync.touch(prefix)
