"""Servers' answers on handed-off connections, held to the relay's parser.

mitmproxy reads the server's answer itself on a connection the relay handed to
it, and its HTTP/1 reader is lenient: it takes bare-LF line endings, passes
NUL and obs-fold on to the client verbatim, buffers a response head without
limit (its own FIXME), reads a body under `Transfer-Encoding: gzip` until the
server closes, and turns any `101` into a tunnel, asked for or not (then a
request pipelined behind reaches the server raw). `StrictHttp1Client` checks
every response head with routing/router/http1.py first, as the relay does:
head_end (CRLF only, MAX_HEAD) while it arrives, parse_response once it is
complete. What that refuses becomes mitmproxy's own "cannot parse" error (a 502
with `Connection: close` to the client, the server connection closed), before
mitmproxy has parsed or forwarded any of it; what it accepts goes on to
mitmproxy's reader unchanged.

mitmproxy 11.0.2 specifics relied on (pinned in requirements.txt, covered by
tests/routing/test_mitmproxy_pins.py): HttpLayer builds its server-side
connections as `Http1Client(...)` looked up in mitmproxy.proxy.layers.http;
Http1Connection._handle_event adds a DataReceived's bytes to `self.buf` before
it calls `read_headers`; and read_headers answers a head it cannot parse with
CloseConnection + ResponseProtocolError, which is what `refuse` yields."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from routing.router.http1 import HttpError, head_end, parse_response


class StrictHttp1Client(_http1.Http1Client):
    """mitmproxy's server side, with each response head checked first."""

    _head: bytearray | None = None  # a copy of self.buf while a head is incomplete
    _refused = False

    def read_headers(self, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
        if self._refused:
            return
        if isinstance(event, events.DataReceived) and self.request is not None:
            head, scanned = self._head, 0
            if head is not None and len(head) + len(event.data) == len(self.buf):
                scanned = len(head)
                head += event.data
            else:  # a new head (after what the last answer left in the buffer)
                head = bytearray(bytes(self.buf))
            try:
                end = head_end(head, scanned, status=502)
                if end >= 0:
                    asked = _asks_upgrade(self.request)
                    parse_response(bytes(head[:end]), upgrade_asked=asked)
            except HttpError as exc:
                yield from self.refuse(exc.message)
                return
            self._head = None if end >= 0 else head
        yield from super().read_headers(event)

    def refuse(self, why: str) -> Generator[Any, Any, None]:
        self._refused = True
        self._head = None
        self.buf = type(self.buf)()
        yield commands.CloseConnection(self.conn)
        assert self.stream_id is not None
        yield ReceiveHttp(
            ResponseProtocolError(self.stream_id, f"Cannot parse HTTP response: {why}")
        )


def _asks_upgrade(request: Any) -> bool:
    headers = request.headers
    connection = headers.get("connection", "").lower()
    tokens = [token.strip() for token in connection.split(",")]
    return "upgrade" in headers and "upgrade" in tokens


def install() -> None:
    """Every server-side HTTP/1 connection mitmproxy makes from now on is strict."""
    http_layers.Http1Client = StrictHttp1Client  # type: ignore[misc]
