"""Connections the relay hands to mitmproxy, still behind the relay's parser.

mitmproxy answers what the relay does not forward itself (HTTP/1.0, https
upstreams, subdomain decisions), but its own HTTP/1 reader buffers a head
without limit and passes what RFC 9112 says to refuse (NUL and other controls,
bare CR, obs-fold, a second Host) on to servers verbatim. So mitmproxy never
reads the socket: `HandedOff` does, and feeds it only what passed
routing/router/http1.py, with the limits every path shares. Each request head
is parsed and its body framed (bad input is answered 400/408/413/431/501/505
here, once mitmproxy has finished the answers it owes, and the connection is
closed); what mitmproxy writes back is framed too, to know when those answers
end, and when a `101` turns the connection into a tunnel (then bytes pass both
ways untouched, as the relay's tunnels do). The servers' answers mitmproxy
reads itself pass the relay's parser first as well (routing/router/
strict_answers.py): a bad one is mitmproxy's 502, and the connection closes.

Memory per connection is bounded: an incomplete head by MAX_HEAD, the bytes
held back while an answer is pending by the relay's HIGH_WATER (reading
pauses), mitmproxy's StreamReader by its own flow control (2 x its limit).
Idle and head timeouts are the relay's sweep, as for relay connections.

Only public asyncio API: mitmproxy gets a StreamReader and a StreamWriter whose
transport is `_Face`, a thin view of the real one that routes writes through
`HandedOff.outgoing`."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from routing.router.http1 import (
    MAX_HEAD,
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
from routing.router.relay import HIGH_WATER, error_answer, linger

log = logging.getLogger("routing.router")


class HandedOff(asyncio.Protocol):
    """The transport's protocol once mitmproxy answers on a connection."""

    def __init__(self, relay: Any, transport: Any, buffered: bytes) -> None:
        self.relay = relay
        self.transport = transport
        self.loop = asyncio.get_event_loop()
        self.reader = asyncio.StreamReader(limit=MAX_HEAD, loop=self.loop)
        self.inner = asyncio.StreamReaderProtocol(self.reader, loop=self.loop)
        self.face = _Face(self)
        self.buf = bytearray(buffered)
        self.scanned = 0  # bytes of an incomplete head already scanned
        self.body: LengthBody | ChunkedBody | None = None  # request body being fed
        # (method, asked for an upgrade) of the requests fed, not answered yet
        self.pending: deque[tuple[bytes, bool]] = deque()
        self.holding = False  # an upgrade request is out: input waits for its answer
        self.tunnel = False
        self.refusal: tuple[int, str] | None = None
        self.closed = False  # our own answer went out: input is dropped
        self.last_io = self.loop.time()
        self.head_started = 0.0
        self.pauses: set[str] = set()  # who wants reading paused: "reader", "gate"
        self.out_head = b""  # mitmproxy's answer head, while incomplete
        self.out_body: LengthBody | ChunkedBody | None = None
        self.out_blind = False  # an answer we could not follow: stop following

    def start(self) -> None:
        relay = self.relay
        relay.connections.add(self)
        self.inner.connection_made(self.face)
        writer = asyncio.StreamWriter(self.face, self.inner, self.reader, self.loop)
        self.pump()
        relay.spawn(relay.handoff(self.reader, writer))

    # --- asyncio callbacks --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # lingering after an answer of our own
        self.last_io = self.loop.time()
        if self.tunnel:
            self.reader.feed_data(data)
            return
        self.buf += data
        self.pump()

    def eof_received(self) -> bool | None:
        if self.closed:
            return None
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.relay.connections.discard(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # --- client -> mitmproxy ------------------------------------------------------

    def pump(self) -> None:
        """Feed mitmproxy every complete, valid piece of the buffer. A head
        with a body goes in together with the body bytes read with it, once
        they passed their checks: mitmproxy streams, so a head fed first could
        reach the server before a body over the limit (or broken) in the very
        same read was refused."""
        buf = self.buf
        held = b""  # a head whose body bytes in BUF are still to be checked
        while buf and not self.closed and self.refusal is None and not self.tunnel:
            if self.body is not None:
                data = bytes(buf)
                try:
                    end = self.body.feed(data, 0)
                except HttpError as exc:
                    self.fail(exc.status, f"Bad request body: {exc.message}")
                    return
                self.reader.feed_data(held + data[:end])
                held = b""
                del buf[:end]
                if self.body.done:
                    self.body = None
                continue
            if self.holding:
                break
            if buf[:2] == b"\r\n":
                del buf[: leading_empty_lines(buf)]
                self.scanned = 0
                continue
            try:
                end = head_end(buf, self.scanned)
                if end < 0:
                    self.scanned = len(buf)
                    self.head_started = self.head_started or self.loop.time()
                    break
                head = bytes(buf[:end])
                request = parse_request(head)
                body = request_body(request, self.relay.limits.max_body)
            except HttpError as exc:
                self.fail(exc.status, exc.message)
                return
            self.scanned = 0
            self.head_started = 0.0
            del buf[:end]
            self.pending.append((request.method, request.upgrade))
            self.holding = request.upgrade
            self.body = body
            if body is None:
                self.reader.feed_data(head)
            else:
                held = head
        if held:  # no body byte read yet: the head goes on, the body streams after it
            self.reader.feed_data(held)
        self._pause("gate", len(buf) > HIGH_WATER)

    def fail(self, status: int, message: str) -> None:
        """Refuse the client's input: our answer once mitmproxy's are out, then
        close. A body broken halfway cannot be waited for (mitmproxy waits for
        the rest): answered now, unless mitmproxy is halfway through an answer
        (then the connection is just closed: an answer cannot be cut into)."""
        mid_body = self.body is not None
        self.buf.clear()
        self.body = None
        self.head_started = 0.0
        if self.refusal is not None or self.closed:
            return
        self.refusal = (status, message)
        if mid_body and (self.out_head or self.out_body is not None):
            self.relay.counters.error()
            self.closed = True
            self.transport.abort()
        elif mid_body or not self.pending or self.out_blind:
            self._send_refusal()

    def _send_refusal(self) -> None:
        assert self.refusal is not None
        self.relay.counters.error()
        self.closed = True
        self.relay.connections.discard(self)
        self.transport.write(error_answer(*self.refusal))
        linger(self.transport, self.loop)  # mitmproxy's reader ends with the connection

    def abort(self) -> None:
        self.transport.abort()

    # --- mitmproxy -> client ------------------------------------------------------

    def outgoing(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_io = self.loop.time()
        self.transport.write(data)
        if self.tunnel or self.out_blind:
            return
        try:
            self._follow(data)
        except HttpError as exc:
            log.warning("cannot follow an answer of mitmproxy (%s): not any more", exc.message)
            self.out_blind = True
            if self.refusal is not None:
                self._send_refusal()

    def _follow(self, data: bytes) -> None:
        """Frame what mitmproxy writes, to see where each answer ends."""
        i = 0
        while i < len(data):
            body = self.out_body
            if body is not None:
                i = body.feed(data, i)
                if body.done:
                    self.out_body = None
                    self._answered()
                continue
            start = len(self.out_head)
            self.out_head += data[i:]
            end = head_end(self.out_head, start, status=502)
            if end < 0:
                return
            head, data, i = self.out_head[:end], self.out_head[end:], 0
            self.out_head = b""
            method, upgrade = self.pending[0] if self.pending else (b"GET", False)
            response = parse_response(head, upgrade_asked=upgrade)
            if 100 <= response.status < 200 and response.status != 101:
                continue  # interim: the final answer follows
            if response.status == 101:
                self._switch()
                return
            self.out_body, _ = response_body(response, method)

    def _answered(self) -> None:
        if self.pending:
            self.pending.popleft()
        if not self.pending:
            self.holding = False
            if self.refusal is not None:
                self._send_refusal()
                return
        self.pump()

    def _switch(self) -> None:
        """A 101 to the upgrade request: from now on, bytes pass untouched."""
        self.tunnel = True
        self.holding = False
        self.pending.clear()
        if self.buf:
            self.reader.feed_data(bytes(self.buf))
            self.buf.clear()
        self._pause("gate", False)

    def _pause(self, who: str, wanted: bool) -> None:
        pauses = self.pauses
        before = bool(pauses)
        if wanted:
            pauses.add(who)
        else:
            pauses.discard(who)
        if bool(pauses) != before and not self.closed:
            if pauses:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()


class _Face:
    """The transport as mitmproxy's StreamReader and StreamWriter see it."""

    def __init__(self, handed: HandedOff) -> None:
        self.handed = handed
        self.transport = handed.transport

    def write(self, data: bytes) -> None:
        self.handed.outgoing(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def write_eof(self) -> None:
        if not self.handed.closed:
            self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def close(self) -> None:
        if not self.handed.closed:  # else lingering after our answer: it closes later
            self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.handed._pause("reader", True)

    def resume_reading(self) -> None:
        self.handed._pause("reader", False)

    def is_reading(self) -> bool:
        return not self.handed.pauses

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)
