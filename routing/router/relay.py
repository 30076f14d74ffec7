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

Anything else (HTTP/1.0, a malformed head, a path trick, an https upstream, in
subdomain mode a /user/ path on any host but that user's own) is handed, with the
bytes already read, to mitmproxy's connection handler, which then owns that
connection for the rest of its life and answers exactly as before. The
hand-over uses only asyncio's public API (`transport.set_protocol`, a
StreamReaderProtocol fed the buffered bytes), no mitmproxy internals.
HUB_ROUTER_RELAY=0 sends every connection to mitmproxy."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from routing.router.table import PathKind, Route, classify

log = logging.getLogger("routing.router")

MAX_HEAD = 64 * 1024  # a longer request head is refused (431)
LINGER = 2.0  # seconds to read and drop input after an error answer
HIGH_WATER = 256 * 1024  # client bytes buffered ahead of a pending response

# One header line: a token, a colon, visible characters / blanks / obs-text (RFC 9110).
_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_DROPPED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
_NO_BODY_STATUS = (204, 304)
# may be sent again after a connection closed without an answer (RFC 9110 9.2.2)
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))
_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large", 502: b"Bad Gateway"}

Handoff = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FramingError(Exception):
    """A body that does not follow its own framing: the connection cannot go on."""


class LengthBody:
    """Content-Length framing: counts bytes down."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def feed(self, data: bytes, start: int) -> int:
        """Consume from DATA[START:]; return the index where this body ends (or len)."""
        take = min(self.remaining, len(data) - start)
        self.remaining -= take
        return start + take

    @property
    def done(self) -> bool:
        return self.remaining == 0


class ChunkedBody:
    """Chunked framing, walked without copying: the bytes are forwarded as they
    came; only the size lines are read, to know where the message ends."""

    __slots__ = ("done", "line", "remaining", "state")
    SIZE, DATA, CRLF, TRAILER = range(4)

    def __init__(self) -> None:
        self.state = self.SIZE
        self.remaining = 0
        self.line = b""
        self.done = False

    def feed(self, data: bytes, start: int) -> int:
        i, n = start, len(data)
        while i < n and not self.done:
            if self.state == self.DATA or self.state == self.CRLF:
                take = min(self.remaining, n - i)
                if self.state == self.CRLF:
                    expected = b"\r\n"[2 - self.remaining :][:take]
                    if data[i : i + take] != expected:
                        raise FramingError("chunk data not followed by CRLF")
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    if self.state == self.DATA:
                        self.state, self.remaining = self.CRLF, 2
                    else:
                        self.state = self.SIZE
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self.line += data[i:]
                if len(self.line) > 4096:
                    raise FramingError("chunk size line too long")
                return n
            line = (self.line + data[i:end]).rstrip(b"\r")
            self.line = b""
            i = end + 1
            if self.state == self.TRAILER:
                if not line:
                    self.done = True
                continue
            size = line.split(b";", 1)[0].strip()
            if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
                raise FramingError("bad chunk size")
            self.remaining = int(size, 16)
            self.state = self.DATA if self.remaining else self.TRAILER
        return i


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
        connect_timeout: float = 10.0,
        idle_timeout: float = 600.0,
    ) -> None:
        self.sync = sync
        self.table = sync.table
        self.hub_address = (hub.host, hub.port)
        self.hub_plain = hub.scheme == "http"
        self.handoff = handoff
        self.counters = counters or Counters()
        self.hsts = b"Strict-Transport-Security: " + hsts.encode() + b"\r\n" if hsts else b""
        self.serves_here = serves_here  # subdomain mode: is this user's path on its host?
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.connections: set[ClientSide] = set()
        self.tasks: set[asyncio.Task[Any]] = set()

    def protocol(self) -> ClientSide:
        return ClientSide(self)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def sweep_idle_forever(self) -> None:
        """mitmproxy's idle timeout, for relay connections: no byte either way
        for `idle_timeout` seconds closes both sides. One pass a second costs
        less than a timer per request."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            limit = loop.time() - self.idle_timeout
            for conn in [c for c in self.connections if c.last_io < limit]:
                conn.abort()


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
        self.last_io = 0.0
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
            except FramingError as exc:
                self.fail(400, f"Bad request body: {exc}")
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
        """Parse the next request head in the buffer and send it on, or hand the
        connection to mitmproxy if it is not ordinary."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end < 0:
            if len(buf) >= MAX_HEAD:  # mitmproxy has no limit: refuse here
                self.fail(431, f"Request header fields too large (limit {MAX_HEAD} bytes)")
            return
        line_end = buf.find(b"\r\n")
        request_line = bytes(buf[:line_end])
        parts = request_line.split(b" ")
        if (
            len(parts) != 3
            or parts[2] != b"HTTP/1.1"
            or not _METHOD.fullmatch(parts[0])
            or not _TARGET.fullmatch(parts[1])
            or not _HEADER_LINES.fullmatch(buf, line_end + 2, end + 2)
        ):
            self.hand_off()
            return
        method, target = parts[0], parts[1]
        where = classify(target.decode("latin-1"))
        relay = self.relay
        if where.kind == PathKind.BAD or (where.kind == PathKind.HUB and not relay.hub_plain):
            self.hand_off()  # a refused path: mitmproxy's 400
            return
        lines = [b""]  # the request line goes in first, once the target is final
        host = None
        length = None
        chunked = False
        keep_alive = True
        for line in bytes(buf[line_end + 2 : end]).split(b"\r\n"):
            name, _, value = line.partition(b":")
            lower = name.lower()
            if lower in _DROPPED:
                continue
            if lower == b"host":
                if host is not None:
                    self.hand_off()
                    return
                host = value.strip()
            elif lower == b"content-length":
                value = value.strip()
                if length is not None or not value.isdigit():
                    self.hand_off()
                    return
                length = int(value)
            elif lower == b"transfer-encoding":
                if chunked or value.strip().lower() != b"chunked":
                    self.hand_off()
                    return
                chunked = True
            elif lower == b"connection" and b"close" in value.lower():
                keep_alive = False
            lines.append(line)
        if host is None or (chunked and length is not None):
            self.hand_off()
            return
        lines.append(self.forwarded + b"X-Forwarded-Host: " + host + b"\r\n")
        del buf[: end + 4]
        self.method = method
        self.keep_alive = keep_alive
        self.started = self.loop.time()
        self.busy = True
        # the body is forwarded once the head has gone out (after a lookup, maybe)
        self.pending_body = ChunkedBody() if chunked else LengthBody(length) if length else None
        if where.kind == PathKind.HUB:
            self.forward(lines, request_line, None)
            return
        serves_here = relay.serves_here
        if serves_here and not serves_here(host.decode("latin-1"), where.user):
            self.unread(lines, request_line)
            self.hand_off()  # another user's path, or the bare host: its add-on decides
            return
        route = relay.table.lookup(where.user, where.segment)
        if route is None:
            self._pause()
            relay.spawn(self._resolve(lines, request_line, where.user, where.segment, target))
        elif route.scheme != "http":
            self.unread(lines, request_line)
            self.hand_off()  # mitmproxy speaks TLS to this server
        else:
            self.forward(lines, request_line, route)

    async def _resolve(
        self, lines: list[bytes], request_line: bytes, user: str, segment: str, target: bytes
    ) -> None:
        """A user the table does not know: ask the hub (RouteSync.resolve caches
        misses and caps concurrent lookups), then forward to the server, or to
        the hub's page for it (/hub/user/...), which tells the user what is up."""
        path = target.split(b"?", 1)[0].decode("latin-1")
        try:
            route = await self.relay.sync.resolve(user, segment, path)
        except Exception as exc:  # never leave the client hanging on a lookup
            log.warning("route lookup for %s failed: %s", path, exc)
            route = None
        if self.closed:
            return
        if route is not None and route.scheme == "http":
            self.forward(lines, request_line, route)
        elif route is None:
            self.forward(lines, _to_hub_page(request_line), None)
        else:
            self.unread(lines, request_line)
            self.hand_off()
        self._resume()

    def unread(self, lines: list[bytes], request_line: bytes) -> None:
        """Put a parsed head back in front of the buffer, as the client sent it
        (minus the X-Forwarded-* it may not set), for mitmproxy to read."""
        lines[0] = request_line
        self.buf[:0] = b"\r\n".join(lines[:-1]) + b"\r\n\r\n"
        self.busy = False
        self.body = None

    def forward(self, lines: list[bytes], request_line: bytes, route: Route | None) -> None:
        """Send the head (and any body bytes already read) to ROUTE's server, or
        to the hub when ROUTE is None."""
        lines[0] = request_line
        head = b"\r\n".join(lines) + b"\r\n"
        relay = self.relay
        self.route = route
        self.rechecked = False
        if route is None:
            address, to_hub, self.prefix = relay.hub_address, True, None
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
            address, to_hub, self.prefix = self.relay.hub_address, True, None
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
        except FramingError as exc:
            self.fail(400, f"Bad request body: {exc}")
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
        if not self.closed:
            reason = _REASONS.get(status, b"Error")
            body = (message + "\n").encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body)
            )
            self._linger()
        self.closed = True

    def _linger(self) -> None:
        """Close after the answer without resetting it away: a socket closed with
        unread input sends RST, which can destroy the answer in flight. So shut
        our side, read and drop what the client still sends, close a bit later."""
        transport = self.transport
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self.paused:
            self.paused = False
            transport.resume_reading()
        self.loop.call_later(LINGER, transport.close)

    def abort(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        if self.transport is not None:
            self.transport.abort()

    # --- to mitmproxy -------------------------------------------------------------

    def hand_off(self) -> None:
        """Give the connection, with what was read of it, to mitmproxy."""
        self.relay.connections.discard(self)
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        transport = self.transport
        reader = asyncio.StreamReader(limit=MAX_HEAD, loop=self.loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self.loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.buf:
            reader.feed_data(bytes(self.buf))
            self.buf.clear()
        writer = asyncio.StreamWriter(transport, protocol, reader, self.loop)
        if self.paused:
            self.paused = False
            transport.resume_reading()
        self.closed = True  # this protocol no longer speaks for the socket
        self.relay.spawn(self.relay.handoff(reader, writer))


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
            await asyncio.wait_for(
                client.loop.create_connection(lambda: self, host, port), relay.connect_timeout
            )
        except TimeoutError:
            self._unreachable(f"connect timed out after {relay.connect_timeout:g} s")
        except OSError as exc:
            self._unreachable(exc.strerror or str(exc))

    def _unreachable(self, why: str) -> None:
        client = self.client
        self.lost = True
        if client.upstream is self:
            sent = b"".join(self.pending or ())  # nothing of it reached any server
            if client.recheck_route(sent, why):
                return
            where = client.prefix or "the hub"
            client.fail(502, f"Bad gateway: cannot reach the server of {where}: {why}")

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        pending, self.pending = self.pending, None
        client = self.client
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
        if self.buf:  # the head came in pieces
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        self._head(data)

    def _head(self, raw: bytes) -> None:
        """RAW: the response head (maybe not all of it yet), then whatever of the
        body came with it; the usual case is one read holding the whole answer."""
        client = self.client
        while self.reading_head:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                if len(raw) > MAX_HEAD:
                    self._bad_response("response head too long")
                else:
                    self.buf += raw
                return
            head_end = end + 4
            head = raw[:head_end]
            line_end = head.find(b"\r\n")
            status_line = head[:line_end]
            if status_line[:7] != b"HTTP/1." or len(status_line) < 12:
                self._bad_response("not an HTTP/1 response")
                return
            code = status_line[9:12]
            if not code.isdigit():
                self._bad_response("bad status code")
                return
            status = int(code)
            if 100 <= status < 200 and status != 101:
                client.write(head)  # 100 Continue & co.; the final answer follows
                raw = raw[head_end:]
                continue
            self.reading_head = False
            self.status = status
            length = None
            chunked = False
            reusable = status_line[7:8] == b"1"  # HTTP/1.1
            location = b""
            for line in head[line_end + 2 : end].split(b"\r\n"):
                name, _, value = line.partition(b":")
                lower = name.lower()
                if lower == b"content-length":
                    value = value.strip()
                    if not value.isdigit() or (length is not None and int(value) != length):
                        self._bad_response("bad Content-Length")
                        return
                    length = int(value)
                elif lower == b"transfer-encoding":
                    chunked = value.strip().lower().endswith(b"chunked")
                    if not chunked:
                        reusable = False
                elif lower == b"connection" and b"close" in value.lower():
                    reusable = False
                elif lower == b"location":
                    location = value.strip()
            write_from = 0  # the head goes out unchanged, with the body bytes: one send
            if client.relay.hsts:
                client.write(head[:-2] + client.relay.hsts + b"\r\n")
                write_from = head_end
            if status == 101:
                if write_from < len(raw):
                    client.write(raw[write_from:] if write_from else raw)
                client.start_tunnel()
                return
            if self.to_hub and 300 <= status < 400 and location:
                client.relay.sync.hub_redirected(location.decode("latin-1"))
            if client.method == b"HEAD" or status in _NO_BODY_STATUS:
                self.body = LengthBody(0)
            elif chunked:
                self.body = ChunkedBody()
            elif length is not None:
                self.body = LengthBody(length)
            else:
                self.body = LengthBody(1 << 62)  # until the server closes
                self.until_close = True
                reusable = False
            self.reusable = reusable
            self._body(raw, head_end, write_from)
            return  # (the next request may already be waiting for its own head)

    def _body(self, data: bytes, start: int, write_from: int | None = None) -> None:
        """Frame DATA[START:] as body; send DATA[WRITE_FROM or START : body end]."""
        body = self.body
        assert body is not None
        client = self.client
        try:
            end = body.feed(data, start)
        except FramingError:
            self.reusable = False
            client.abort()
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
            if replayable and client.recheck_route(client.head, why):  # a port someone reused
                return
            client.fail(502, f"Bad gateway: {why}")
            return
        if self.body is not None:
            client.relay.counters.error()
            client.abort()  # cut mid-body: the client must see it as incomplete
            return
        client.upstream = None  # idle socket closed by the server: fine
