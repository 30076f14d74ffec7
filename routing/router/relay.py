"""The router's data path for ordinary HTTP/1.1 requests: raw bytes, one parse.

Why it exists: even trimmed (only the add-ons a router needs, inline hook
dispatch, `python -O`, uvloop), mitmproxy's HTTP/1 stack cost about twice
configurable-http-proxy's CPU per request: every request becomes events and
commands through a layer stack, Request/Response objects with typed fields,
and a head re-assembled from parsed headers. Through a real jupyter-server,
which itself needs most of a core on a 2-core machine, that CPU is exactly
what router and server fight over.

So each public connection starts here. A request is *ordinary* when it is
HTTP/1.1 with an origin-form target, a well-formed head (one regular
expression checks every header line), at most one Content-Length or a
`Transfer-Encoding: chunked` (never both), and its path goes to the hub or to
a route (in the table, or found by a lookup) over plain HTTP. Ordinary
requests are forwarded with the head re-written only by dropping client-sent
`X-Forwarded-*` and appending the router's own; bodies stream both ways with flow control (a
full socket pauses the other side), framed by Content-Length or by walking
chunk sizes, so the connection can be reused. A `101 Switching Protocols`
turns the connection into a byte tunnel (WebSockets: nothing is kept per
message; activity is counted per chunk).

A user the table does not know is looked up at the hub first (RouteSync.resolve:
misses cached briefly, lookups capped), then sent to the server found or to the
hub's page for it (/hub/user/...), still on the relay.

Heads and bodies are parsed by routing/router/http1.py (strict RFC 9112, one
set of limits); what breaks it is answered here (400, 413, 431, 501, 505) and
never forwarded. A response that breaks it (a transfer coding other than
chunked, Content-Length with chunked, a `101` nobody asked for, ...) is a 502
and its server connection is closed, never tunnelled.

What is valid but not ordinary (HTTP/1.0, an https upstream, in subdomain mode
a /user/ path on any host but that user's own) is handed, with the bytes
already read, to mitmproxy's connection handler, which then answers on that
connection for the rest of its life, behind routing/router/handoff.py: every
further request on it still passes the same parser and limits first.
HUB_ROUTER_RELAY=0 hands every connection over at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from routing.router.http1 import (
    ChunkedBody,
    HttpError,
    LengthBody,
    head_end,
    leading_empty_lines,
    parse_request,
    parse_response,
    request_body,
    response_body,
)
from routing.router.hubs import HubPool
from routing.router.limits import Limits
from routing.router.table import PathKind, Route, classify

log = logging.getLogger("routing.router")

LINGER = 2.0  # seconds to read and drop input after an error answer
HIGH_WATER = 256 * 1024  # client bytes buffered ahead of a pending response

_DROPPED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
# may be sent again after a connection closed without an answer (RFC 9110 9.2.2)
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))
REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    505: b"HTTP Version Not Supported",
}

Handoff = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def error_answer(status: int, message: str) -> bytes:
    """The router's own answer (plain text), after which it closes."""
    body = (message + "\n").encode()
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        % (
            status,
            REASONS.get(status, b"Error"),
            len(body),
        )
        + b"Connection: close\r\n\r\n"
        + body
    )


class Counters:
    """What the relay reports: metrics (optional) and per-route activity."""

    def __init__(self, metrics: Any = None) -> None:
        self.metrics = metrics

    def response(self, status: int, elapsed: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(status, elapsed)

    def error(self) -> None:
        if self.metrics is not None:
            self.metrics.failed()

    def websocket(self, opened: bool) -> None:
        if self.metrics is not None:
            self.metrics.websocket_change(opened)


def _address_pool(upstreams: Any) -> tuple[HubPool[tuple[str, int]], bool]:
    """(a pool of (host, port), whether they speak plain HTTP)."""
    members = list(upstreams.hubs) if isinstance(upstreams, HubPool) else [upstreams]
    pool = HubPool([(member.host, member.port) for member in members])
    return pool, members[0].scheme == "http"


class Relay:
    """Per-worker state shared by every connection's protocol."""

    def __init__(
        self,
        sync: Any,
        hub: Any,
        handoff: Handoff,
        *,
        counters: Counters | None = None,
        hsts: str = "",
        serves_here: Callable[[str, str], bool] | None = None,
        limits: Limits | None = None,
        native: bool = True,
        streams: Any = None,
    ) -> None:
        self.sync = sync
        self.table = sync.table
        # hub and streams: one Upstream or a HubPool of them (all of one scheme)
        self.hubs, self.hub_plain = _address_pool(hub)
        # progress streams: to the stream server, else the hub
        self.streams, self.stream_plain = _address_pool(streams or hub)
        self.handoff = handoff
        self.counters = counters or Counters()
        self.hsts = b"Strict-Transport-Security: " + hsts.encode() + b"\r\n" if hsts else b""
        self.serves_here = serves_here  # subdomain mode: is this user's path on its host?
        self.limits = limits or Limits()
        self.native = native  # False: every connection goes to mitmproxy at once
        self.connections: set[Any] = set()  # ClientSide and HandedOff: the sweep's
        self.tasks: set[asyncio.Task[Any]] = set()

    def pool_of(self, address: tuple[str, int]) -> HubPool[tuple[str, int]] | None:
        """The hub pool ADDRESS is in (the hubs' or the stream servers'), if any."""
        if address in self.hubs:
            return self.hubs
        return self.streams if address in self.streams else None

    def protocol(self) -> ClientSide:
        return ClientSide(self)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def sweep_idle_forever(self, every: float = 1.0) -> None:
        """The idle and head timeouts, for every connection (handed-off ones
        too): no byte either way for `idle_timeout` seconds closes both sides; a
        request head still incomplete `head_timeout` seconds after its first
        byte is answered 408. One pass a second costs less than a timer per
        request."""
        loop = asyncio.get_running_loop()
        limits = self.limits
        every = min(every, limits.head_timeout / 2, limits.idle_timeout / 2)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            idle, slow = now - limits.idle_timeout, now - limits.head_timeout
            for conn in list(self.connections):
                if conn.last_io < idle:
                    conn.abort()
                elif 0 < conn.head_started < slow:
                    conn.fail(408, f"Request head not complete in {limits.head_timeout:g} s")


class ClientSide(asyncio.Protocol):
    """One public connection while the relay owns it."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.loop = asyncio.get_event_loop()
        self.transport: Any = None
        self.buf = bytearray()
        self.upstream: UpstreamSide | None = None
        self.body: LengthBody | ChunkedBody | None = None  # request body being forwarded
        self.busy = False  # a request is out, its response not complete
        self.tunnel = False
        self.closed = False
        self.keep_alive = True
        self.paused = False
        self.prefix: str | None = None  # the route of the current request (activity)
        self.route: Route | None = None  # where the current request went (None: the hub)
        self.rechecked = False  # its route was looked up again after a refused connect
        self.replayable = False  # the head is the whole request (no body)
        self.started = 0.0
        self.method = b""
        self.head = b""  # the forwarded head of the current request (one retry)
        self.pending_body: LengthBody | ChunkedBody | None = None
        self.retry = False
        self.upgrade_asked = False  # the current request may be answered 101
        self.last_io = 0.0
        self.head_started = 0.0  # when the first byte of an incomplete head came (or 0)
        self.scanned = 0  # bytes of an incomplete head already scanned
        self.forwarded = b""  # X-Forwarded-For/Proto lines, fixed per connection

    # --- asyncio callbacks --------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.last_io = self.loop.time()
        self.relay.connections.add(self)
        peer = transport.get_extra_info("peername")
        proto = b"https" if transport.get_extra_info("sslcontext") is not None else b"http"
        client = (peer[0] if peer else "").encode("latin-1")
        self.forwarded = b"X-Forwarded-For: " + client + b"\r\nX-Forwarded-Proto: " + proto
        self.forwarded += b"\r\n"
        if not self.relay.native:
            self.hand_off()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # lingering after an answer of our own
        self.last_io = self.loop.time()
        upstream = self.upstream
        if self.tunnel:
            if upstream is not None:
                upstream.write(data)
            if self.prefix is not None:
                self.relay.sync.touch(self.prefix)
            return
        if self.body is not None and upstream is not None:
            try:
                end = self.body.feed(data, 0)
            except HttpError as exc:
                self.fail(exc.status, f"Bad request body: {exc.message}")
                return
            upstream.write(data if end == len(data) else data[:end])
            if self.body.done:
                self.body = None
                if end < len(data):
                    self.buf += data[end:]
                    self._hold_back()
            return
        self.buf += data
        if not self.busy:
            self.next_request()
        else:
            self._hold_back()

    def eof_received(self) -> bool | None:
        """A client may half-close after its request: finish the response first."""
        upstream = self.upstream
        if self.tunnel and upstream is not None and upstream.transport is not None:
            if upstream.transport.can_write_eof():
                upstream.transport.write_eof()
                return True
            return None
        if self.busy:
            self.keep_alive = False
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.relay.connections.discard(self)
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.tunnel:
            self.tunnel = False
            self.relay.counters.websocket(False)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # --- requests -----------------------------------------------------------------

    def next_request(self) -> None:
        """Parse the next request head in the buffer and send it on, answer it
        ourselves when it breaks HTTP/1.1, or hand the connection to mitmproxy
        when it is valid but not ordinary."""
        buf = self.buf
        if buf[:2] == b"\r\n":
            del buf[: leading_empty_lines(buf)]
            self.scanned = 0
        try:
            end = head_end(buf, self.scanned)
        except HttpError as exc:
            self.fail(exc.status, exc.message)
            return
        if end < 0:
            self.scanned = len(buf)
            if buf and not self.head_started:
                self.head_started = self.loop.time()
            return
        self.scanned = 0
        self.head_started = 0.0
        head = bytes(buf[:end])
        relay = self.relay
        try:
            request = parse_request(head, _DROPPED)
            where = classify(request.target.decode("latin-1"))
            if where.kind == PathKind.BAD:
                raise HttpError(400, f"Bad request path: {where.reason}")
            if request.version != b"HTTP/1.1" or (
                (where.kind == PathKind.HUB and not relay.hub_plain)
                or (where.kind == PathKind.STREAM and not relay.stream_plain)
            ):
                self.hand_off()  # valid, not ordinary: mitmproxy answers it
                return
            self.pending_body = request_body(request, relay.limits.max_body)
        except HttpError as exc:
            self.fail(exc.status, exc.message)
            return
        host = request.host or b""
        request_line = head[: head.find(b"\r\n")]
        rest = request.fields + self.forwarded + b"X-Forwarded-Host: " + host + b"\r\n\r\n"
        del buf[:end]
        self.method = request.method
        self.keep_alive = request.keep_alive
        self.upgrade_asked = request.upgrade
        self.started = self.loop.time()
        self.busy = True
        # the body is forwarded once the head has gone out (after a lookup, maybe)
        if where.kind == PathKind.HUB:
            self.forward(rest, request_line, None)
            return
        if where.kind == PathKind.STREAM:
            self.forward(rest, request_line, None, stream=True)
            return
        serves_here = relay.serves_here
        if serves_here and not serves_here(host.decode("latin-1"), where.user):
            self.unread(head)
            self.hand_off()  # another user's path, or the bare host: its add-on decides
            return
        route = relay.table.lookup(where.user, where.segment)
        if route is None:
            self._pause()
            relay.spawn(self._resolve(rest, request_line, head, where, request.target))
        elif route.scheme != "http":
            self.unread(head)
            self.hand_off()  # mitmproxy speaks TLS to this server
        else:
            self.forward(rest, request_line, route)

    async def _resolve(
        self, rest: bytes, request_line: bytes, head: bytes, where: Any, target: bytes
    ) -> None:
        """A user the table does not know: ask the hub (RouteSync.resolve caches
        misses and caps concurrent lookups), then forward to the server, or to
        the hub's page for it (/hub/user/...), which tells the user what is up."""
        path = target.split(b"?", 1)[0].decode("latin-1")
        try:
            method = request_line.split(b" ", 1)[0].decode("latin-1")
            route = await self.relay.sync.resolve(where.user, where.segment, path, method=method)
        except Exception as exc:  # never leave the client hanging on a lookup
            log.warning("route lookup for %s failed: %s", path, exc)
            route = None
        if self.closed:
            return
        if route is not None and route.scheme == "http":
            self.forward(rest, request_line, route)
        elif route is None:
            self.forward(rest, _to_hub_page(request_line), None)
        else:
            self.unread(head)
            self.hand_off()
        self._resume()

    def unread(self, head: bytes) -> None:
        """Put a parsed head back in front of the buffer, as the client sent it,
        for the hand-off (which parses it again; mitmproxy's add-on replaces the
        X-Forwarded-* a client may have sent)."""
        self.buf[:0] = head
        self.busy = False
        self.body = None

    def forward(
        self, rest: bytes, request_line: bytes, route: Route | None, *, stream: bool = False
    ) -> None:
        """Send the head (REQUEST_LINE, then REST: its fields and the empty line)
        and any body bytes already read to ROUTE's server, or to the hub when
        ROUTE is None (its stream server when STREAM)."""
        head = request_line + b"\r\n" + rest
        relay = self.relay
        self.route = route
        self.rechecked = False
        if route is None:
            hub = relay.streams.current() if stream else relay.hubs.current()
            address, to_hub, self.prefix = hub, True, None
        else:
            address, to_hub, self.prefix = (route.host, route.port), False, route.prefix
            relay.sync.touch(route.prefix)
        self.body = self.pending_body
        self.head = head
        self.replayable = self.body is None
        upstream = self.upstream
        if upstream is not None and (upstream.address != address or upstream.lost):
            upstream.close()
            upstream = None
        self.retry = upstream is not None and self.replayable  # a reused socket may be closing
        if upstream is None:
            upstream = self.upstream = UpstreamSide(self, address, to_hub)
            upstream.connect()
        else:
            upstream.to_hub = to_hub
        upstream.expect_response()
        upstream.write(head)
        if self.body is not None and self.buf:
            self._forward_buffered_body()
        self._hold_back()

    def recheck_route(self, replay: bytes, why: str) -> bool:
        """The current request's server could not be reached (REPLAY: every byte
        of the request that was meant for it). The table may be behind the hub
        (a server restarted on a new port since the last sync): look the route
        up again at the hub and send REPLAY to the new target, once per request.
        False when there is nothing to recheck (a hub request, or done already)."""
        stale = self.route
        if stale is None or self.rechecked or self.closed:
            return False
        self.rechecked = True
        self.upstream = None
        self._pause()
        self.relay.spawn(self._recheck(stale, replay, why))
        return True

    async def _recheck(self, stale: Route, replay: bytes, why: str) -> None:
        try:
            route = await self.relay.sync.recheck(stale)
        except Exception as exc:  # never leave the client hanging on a lookup
            log.warning("route recheck for %s failed: %s", stale.prefix, exc)
            route = stale
        if self.closed:
            return
        if route is None:  # the hub has no server there now: its page says so
            address, to_hub, self.prefix = self.relay.hubs.current(), True, None
            replay = _to_hub_page(replay)
        elif route.scheme != "http" or (route.host, route.port) == (stale.host, stale.port):
            self.fail(502, f"Bad gateway: cannot reach the server of {stale.prefix}: {why}")
            return
        else:
            address, to_hub, self.prefix = (route.host, route.port), False, route.prefix
        self.route = route
        self.retry = False
        upstream = self.upstream = UpstreamSide(self, address, to_hub)
        upstream.connect()
        upstream.expect_response()
        upstream.write(replay)
        if self.body is not None and self.buf:
            self._forward_buffered_body()
        self._resume()

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        """Read again, unless an upstream connect or a full buffer holds us back."""
        upstream = self.upstream
        if self.closed or (upstream is not None and upstream.pending is not None):
            return
        if self.paused and len(self.buf) <= HIGH_WATER:
            self.paused = False
            self.transport.resume_reading()

    def _forward_buffered_body(self) -> None:
        buf, body, upstream = self.buf, self.body, self.upstream
        assert body is not None and upstream is not None
        data = bytes(buf)
        try:
            end = body.feed(data, 0)
        except HttpError as exc:
            self.fail(exc.status, f"Bad request body: {exc.message}")
            return
        upstream.write(data[:end])
        del buf[:end]
        if body.done:
            self.body = None

    def _hold_back(self) -> None:
        """Do not read far ahead of a pending response (pipelined requests)."""
        if len(self.buf) > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def response_done(self, keep_upstream: bool) -> None:
        """The current response is complete on the client's socket."""
        self.busy = False
        if self.body is not None:  # answered before the request body ended (e.g. 413)
            self.body = None
            self.keep_alive = False
        if not keep_upstream and self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if not self.keep_alive:
            self.transport.close()
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        if self.buf:
            self.next_request()

    def start_tunnel(self) -> None:
        self.tunnel = True
        self.busy = False
        self.relay.counters.websocket(True)
        if self.buf and self.upstream is not None:
            self.upstream.write(bytes(self.buf))
            self.buf.clear()
        if self.paused:
            self.paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def fail(self, status: int, message: str) -> None:
        """An answer of the router's own, then close (the stream cannot go on)."""
        self.relay.counters.error()
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self.head_started = 0.0
        if not self.closed:
            self.transport.write(error_answer(status, message))
            linger(self.transport, self.loop)
        self.closed = True
        self.relay.connections.discard(self)

    def abort(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        if self.transport is not None:
            self.transport.abort()

    # --- to mitmproxy -------------------------------------------------------------

    def hand_off(self) -> None:
        """Give the connection, with what was read of it, to mitmproxy (through
        the parser of routing/router/handoff.py)."""
        from routing.router.handoff import HandedOff

        self.relay.connections.discard(self)
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self.closed = True  # this protocol no longer speaks for the socket
        transport = self.transport
        handed = HandedOff(self.relay, transport, bytes(self.buf))
        self.buf.clear()
        transport.set_protocol(handed)
        if self.paused:
            self.paused = False
            transport.resume_reading()
        handed.start()


def linger(transport: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Close after an answer of our own without resetting it away: a socket
    closed with unread input sends RST, which can destroy the answer in flight.
    So shut our side, read and drop what the client still sends (the protocol
    ignores it), close a bit later."""
    if not transport.can_write_eof():
        transport.close()
        return
    transport.write_eof()
    transport.resume_reading()
    loop.call_later(LINGER, transport.close)


def _to_hub_page(head: bytes) -> bytes:
    """`GET /user/x/... HTTP/1.1...` -> `GET /hub/user/x/...`: the hub's page for
    a user path no server answers (it says whether the server runs, or starts)."""
    method, _, rest = head.partition(b" ")
    return method + b" /hub" + rest


class UpstreamSide(asyncio.Protocol):
    """The router's connection to one server (or the hub) for one client connection."""

    def __init__(self, client: ClientSide, address: tuple[str, int], to_hub: bool) -> None:
        self.client = client
        self.address = address
        self.to_hub = to_hub
        self.transport: Any = None
        self.pending: list[bytes] | None = []  # written before the connection is up
        self.buf = bytearray()
        self.body: LengthBody | ChunkedBody | None = None
        self.reading_head = False
        self.until_close = False
        self.reusable = True
        self.got_bytes = False
        self.lost = False
        self.status = 0

    def connect(self) -> None:
        client = self.client
        if not client.paused:  # nothing more from the client until we can send it
            client.paused = True
            client.transport.pause_reading()
        client.relay.spawn(self._connect())

    async def _connect(self) -> None:
        client = self.client
        relay = client.relay
        host, port = self.address
        try:
            timeout = relay.limits.connect_timeout
            await asyncio.wait_for(client.loop.create_connection(lambda: self, host, port), timeout)
        except TimeoutError:
            self._unreachable(f"connect timed out after {relay.limits.connect_timeout:g} s")
        except OSError as exc:
            self._unreachable(exc.strerror or str(exc))

    def _unreachable(self, why: str) -> None:
        client = self.client
        self.lost = True
        if client.upstream is self:
            if self.to_hub and self._fail_over():
                return
            sent = b"".join(self.pending or ())  # nothing of it reached any server
            if client.recheck_route(sent, why):
                return
            where = client.prefix or "the hub"
            client.fail(502, f"Bad gateway: cannot reach the server of {where}: {why}")

    def _hub_hung_up(self, *, replay: bool) -> bool:
        """A hub closed the connection without a byte of answer (it was killed,
        most likely): it is passed over from now on, and when REPLAY (an
        idempotent request without a body) the same request goes to the next
        hub of its pool. True when it was sent there."""
        client = self.client
        pool = client.relay.pool_of(self.address)
        nxt = pool.refused(self.address) if pool is not None else None
        if nxt is None or not replay:
            return False
        fresh = client.upstream = UpstreamSide(client, nxt, True)
        fresh.connect()
        fresh.expect_response()
        fresh.write(client.head)
        return True

    def _fail_over(self) -> bool:
        """A hub refused: connect to the next one of its pool instead, with the
        same pending bytes (none has reached any hub). False when there is none."""
        pool = self.client.relay.pool_of(self.address)
        nxt = pool.refused(self.address) if pool is not None else None
        if nxt is None:
            return False
        self.address, self.lost = nxt, False
        self.client.relay.spawn(self._connect())
        return True

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        pending, self.pending = self.pending, None
        client = self.client
        if self.to_hub:
            pool = client.relay.pool_of(self.address)
            if pool is not None:
                pool.answered(self.address)
        if client.closed or client.upstream is not self:
            transport.close()
            return
        if pending:
            transport.write(b"".join(pending))
        if client.paused and len(client.buf) <= HIGH_WATER:
            client.paused = False
            client.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.pending is not None:
            self.pending.append(data)
        elif not self.lost:
            self.transport.write(data)

    def expect_response(self) -> None:
        self.reading_head = True
        self.got_bytes = False
        self.until_close = False
        self.body = None
        self.status = 0
        self.buf.clear()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        client = self.client
        if not client.paused and not client.closed:
            client.paused = True
            client.transport.pause_reading()

    def resume_writing(self) -> None:
        client = self.client
        if client.paused and not client.closed and len(client.buf) <= HIGH_WATER:
            client.paused = False
            client.transport.resume_reading()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    # --- responses ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        client = self.client
        if self.lost or client.upstream is not self:
            return  # a socket being closed (replaced, or its client gone)
        client.last_io = client.loop.time()
        self.got_bytes = True
        if client.tunnel:
            client.write(data)
            if client.prefix is not None:
                client.relay.sync.touch(client.prefix)
            return
        if self.body is not None:
            self._body(data, 0)
            return
        if not self.reading_head:
            self.reusable = False  # bytes nobody asked for: never reuse this socket
            self.close()
            return
        start = 0
        if self.buf:  # the head came in pieces
            start = len(self.buf)
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        self._head(data, start)

    def _head(self, raw: bytes, start: int = 0) -> None:
        """RAW: the response head (maybe not all of it yet; RAW[:START] was
        scanned before), then whatever of the body came with it; the usual case
        is one read holding the whole answer."""
        client = self.client
        while self.reading_head:
            try:
                end = head_end(raw, start, status=502)
                if end < 0:
                    self.buf += raw
                    return
                response = parse_response(raw[:end], upgrade_asked=client.upgrade_asked)
            except HttpError as exc:
                self._bad_response(exc.message)
                return
            status = response.status
            if 100 <= status < 200 and status != 101:
                client.write(raw[:end])  # 100 Continue & co.; the final answer follows
                raw, start = raw[end:], 0
                continue
            self.reading_head = False
            self.status = status
            write_from = 0  # the head goes out unchanged, with the body bytes: one send
            if client.relay.hsts:
                client.write(raw[: end - 2] + client.relay.hsts + b"\r\n")
                write_from = end
            if status == 101:
                if write_from < len(raw):
                    client.write(raw[write_from:] if write_from else raw)
                client.start_tunnel()
                return
            if self.to_hub and 300 <= status < 400 and response.location:
                client.relay.sync.hub_redirected(response.location.decode("latin-1"))
            self.body, self.until_close = response_body(response, client.method)
            self.reusable = response.reusable and not self.until_close
            self._body(raw, end, write_from)
            return  # (the next request may already be waiting for its own head)

    def _body(self, data: bytes, start: int, write_from: int | None = None) -> None:
        """Frame DATA[START:] as body; send DATA[WRITE_FROM or START : body end]."""
        body = self.body
        assert body is not None
        client = self.client
        try:
            end = body.feed(data, start)
        except HttpError:
            self.reusable = False
            client.abort()  # mid-body: the client must see it as incomplete
            return
        low = start if write_from is None else write_from
        if end > low:
            client.write(data if low == 0 and end == len(data) else data[low:end])
        if body.done:
            self.body = None
            if end < len(data):
                self.reusable = False  # extra bytes after the response
            self._complete()

    def _complete(self) -> None:
        client = self.client
        if self.until_close:
            client.keep_alive = False  # the client too can only see the end as a close
        client.relay.counters.response(self.status, client.loop.time() - client.started)
        client.response_done(self.reusable)

    def _bad_response(self, why: str) -> None:
        self.reusable = False
        self.client.fail(502, f"Bad gateway: the server sent a bad response ({why})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        client = self.client
        if client.upstream is not self or client.closed:
            return
        if client.tunnel:
            client.transport.close()
            return
        if self.body is not None and self.until_close:
            self.body = None
            self._complete()
            return
        if self.reading_head and client.busy:
            if not self.got_bytes and client.retry and client.body is None:
                client.retry = False  # a kept-alive socket the server had closed
                fresh = client.upstream = UpstreamSide(client, self.address, self.to_hub)
                fresh.connect()
                fresh.expect_response()
                fresh.write(client.head)
                return
            why = "the server closed the connection without answering"
            replayable = not self.got_bytes and client.replayable and client.method in _IDEMPOTENT
            if self.to_hub and self._hub_hung_up(replay=replayable):  # a hub dying
                return
            if replayable and client.recheck_route(client.head, why):  # a port someone reused
                return
            client.fail(502, f"Bad gateway: {why}")
            return
        if self.body is not None:
            client.relay.counters.error()
            client.abort()  # cut mid-body: the client must see it as incomplete
            return
        client.upstream = None  # idle socket closed by the server: fine
