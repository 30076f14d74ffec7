"""Pure HTTP/1.1 framing for the router: where a head ends, what a request or
response head says, and where a body ends. Bytes in, values out; no I/O.

Strict RFC 9112 in both directions: what it says to reject is rejected, with
the status a client (4xx) or the router's own answer for a bad server (502)
should get, never guessed at. In particular:

- lines end with CRLF: a bare LF or a bare CR anywhere in a head is refused at
  once (never waited on until a timeout), as are NUL and other control
  characters, obs-fold, whitespace before a field's colon, invalid field
  names, and more than one Host;
- a request is framed by one Content-Length (digits only) or by
  `Transfer-Encoding: chunked` exactly, never both; a response the same way
  (identical repeated lengths allowed, RFC 9110 8.6); any other transfer
  coding is refused rather than relayed with a guessed end;
- a `101` is only a switch of protocols in answer to a request that asked for
  an upgrade;
- chunk sizes are 1-16 hex digits, nothing else before the extensions, which
  are bounded and must follow the grammar; trailer fields follow field rules.

One set of limits for every path of the router (the relay and the connections
it hands to mitmproxy): heads of MAX_HEAD bytes (431 beyond), MAX_FIELDS field
lines (431), chunk lines of MAX_CHUNK_LINE bytes, and a request body limit when
one is configured (413)."""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_HEAD = 64 * 1024  # request or response head, CRLFs included
MAX_FIELDS = 100  # header field lines per head (and per trailer section)
MAX_CHUNK_LINE = 4096  # chunk size + extensions
MAX_LENGTH_DIGITS = 18  # Content-Length below 10**18: no overflow anywhere downstream

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELD_LINES = re.compile(rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*")
_FIELD_NAME = re.compile(_TOKEN)
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_METHOD = re.compile(_TOKEN)
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?")
_HOST = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=%]*(?::[0-9]*)?|\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")
_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_QUOTED = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*)"
)
_OWS = b" \t"
_NO_BODY_STATUS = (204, 304)


class HttpError(Exception):
    """Input that breaks HTTP/1.1: STATUS is what to answer (4xx to a client,
    502 for a server's response), MESSAGE says what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FramingError(HttpError):
    """A body that does not follow its own framing: the connection cannot go on."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message)


# --- heads ----------------------------------------------------------------------------


def head_end(buf: bytes | bytearray, start: int = 0, *, status: int = 400) -> int:
    """The index just past the empty line that ends the head at the front of
    BUF, or -1 while it is incomplete. Bytes before START were scanned by an
    earlier call (pass the previous len(BUF)), so a head arriving byte by byte
    costs linear time. A bare LF or CR raises HttpError(STATUS) at once; a head
    longer than MAX_HEAD raises 431 (STATUS when it is a response's)."""
    end = buf.find(b"\r\n\r\n", max(0, start - 3), MAX_HEAD)
    # every CR and every LF of the new bytes is part of a CRLF (counts run in C)
    low = max(0, start - 1)
    if low and buf[low] == 10 and buf[low - 1] == 13:
        low -= 1  # a CRLF cut in two by the previous read
    high = end + 4 if end >= 0 else len(buf)
    if end < 0 and high and buf[high - 1] == 13:
        high -= 1  # a CR at the end: its LF may be in the next read
    crlf = buf.count(b"\r\n", low, high)
    if buf.count(b"\n", low, high) != crlf or buf.count(b"\r", low, high) != crlf:
        bare = _BARE.search(buf, low, high)
        kind = "LF without CR" if bare is not None and buf[bare.start()] == 10 else "CR without LF"
        raise HttpError(status, f"line ending with a {kind} (lines must end with CRLF)")
    if end >= 0:
        return end + 4
    if len(buf) >= MAX_HEAD:
        what = 431 if status == 400 else status
        raise HttpError(what, f"header fields too large (limit {MAX_HEAD} bytes)")
    return -1


def leading_empty_lines(buf: bytes | bytearray) -> int:
    """How many bytes of CRLFs precede a request line (RFC 9112 2.2: ignored)."""
    i = 0
    while buf.startswith(b"\r\n", i):
        i += 2
    return i


class Request(NamedTuple):
    method: bytes
    target: bytes
    version: bytes  # b"HTTP/1.1" or b"HTTP/1.0"
    fields: bytes  # the field lines as sent, each with its CRLF, minus the dropped names
    host: bytes | None
    length: int | None  # Content-Length
    chunked: bool
    keep_alive: bool
    upgrade: bool  # asks to switch protocols (Upgrade + Connection: upgrade)


def _values(text: bytes, lower: bytes, name: bytes) -> list[bytes]:
    """Every value of field NAME (lowercase) in TEXT: b"\\n" + a validated
    field block, LOWER: TEXT lowercased. Plain searches (C speed), no split:
    in a validated block, "\\n<name>:" is exactly a line of that field."""
    key = b"\n" + name + b":"
    found = []
    i = lower.find(key)
    while i >= 0:
        start = i + len(key)
        end = text.find(b"\r", start)
        found.append(text[start:end].strip(_OWS))
        i = lower.find(key, end)
    return found


def parse_request(head: bytes, drop: tuple[bytes, ...] = ()) -> Request:
    """A complete request head (from head_end) -> Request; HttpError when it
    breaks RFC 9112. Field lines named in DROP (lowercase x-forwarded-* names)
    are left out of `fields`. One pass of C-speed matching finds the fields the
    router reads; the others are forwarded as they are, never split."""
    line_end = head.find(b"\r\n")
    parts = head[:line_end].split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not _METHOD.fullmatch(method):
        raise HttpError(400, "malformed request method")
    if not _TARGET.fullmatch(target):
        raise HttpError(400, "malformed request target")
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        if _VERSION.fullmatch(version):
            raise HttpError(505, "only HTTP/1.1 and HTTP/1.0 are supported")
        raise HttpError(400, "malformed HTTP version")
    fields = _field_block(head, line_end, 400)
    text = b"\n" + fields
    lower = text.lower()
    hosts = _values(text, lower, b"host")
    if len(hosts) > 1:
        raise HttpError(400, "more than one Host header")
    host = hosts[0] if hosts else None
    if host is not None and not _HOST.fullmatch(host):
        raise HttpError(400, "invalid Host header")
    length = None
    if b"\ncontent-length:" in lower:
        lengths = _values(text, lower, b"content-length")
        if len(lengths) > 1:
            raise HttpError(400, "more than one Content-Length")
        length = _length(lengths[0], 400)
    chunked = False
    if b"\ntransfer-encoding:" in lower:
        codings = _values(text, lower, b"transfer-encoding")
        if len(codings) > 1 or codings[0].lower() != b"chunked":
            raise HttpError(501, "only Transfer-Encoding: chunked is supported")
        chunked = True
    connection = [
        token.strip(_OWS)
        for value in _values(lower, lower, b"connection")
        for token in value.split(b",")
    ]
    has_upgrade = b"\nupgrade:" in lower
    if drop and b"\nx-forwarded-" in lower:
        fields = b"".join(
            line + b"\r\n"
            for line in fields[:-2].split(b"\r\n")
            if line.partition(b":")[0].lower() not in drop
        )
    if chunked and length is not None:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    if version == b"HTTP/1.1":
        if host is None:
            raise HttpError(400, "missing Host header")
        keep_alive = b"close" not in connection
    else:
        if chunked:
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        keep_alive = b"keep-alive" in connection and b"close" not in connection
    upgrade = has_upgrade and b"upgrade" in connection
    return Request(method, target, version, fields, host, length, chunked, keep_alive, upgrade)


class Response(NamedTuple):
    status: int
    length: int | None
    chunked: bool
    reusable: bool  # HTTP/1.1 without Connection: close
    location: bytes


def parse_response(head: bytes, *, upgrade_asked: bool) -> Response:
    """A complete response head -> Response; HttpError(502) when the server
    broke RFC 9112, or switched protocols without being asked (UPGRADE_ASKED:
    the request asked for an upgrade)."""
    line_end = head.find(b"\r\n")
    match = _STATUS_LINE.fullmatch(head, 0, line_end)
    if match is None:
        raise HttpError(502, "malformed status line")
    http11 = match.group(1) == b"1"
    status = int(match.group(2))
    if not 100 <= status <= 599:
        raise HttpError(502, "status code outside 100-599")
    fields = _field_block(head, line_end, 502)
    text = b"\n" + fields
    lower = text.lower()
    length = None
    if b"\ncontent-length:" in lower:
        lengths = {_length(value, 502) for value in _values(text, lower, b"content-length")}
        if len(lengths) > 1:
            raise HttpError(502, "conflicting Content-Length")
        length = lengths.pop()
    chunked = False
    if b"\ntransfer-encoding:" in lower:
        codings = _values(lower, lower, b"transfer-encoding")
        if len(codings) > 1 or codings[0] != b"chunked" or not http11:
            raise HttpError(502, "Transfer-Encoding other than one 'chunked'")
        chunked = True
    reusable = http11
    if b"\nconnection:" in lower:
        for value in _values(lower, lower, b"connection"):
            if b"close" in [token.strip(_OWS) for token in value.split(b",")]:
                reusable = False
    locations = _values(text, lower, b"location") if b"\nlocation:" in lower else []
    location = locations[0] if locations else b""
    if chunked and length is not None:
        raise HttpError(502, "both Content-Length and Transfer-Encoding")
    if status == 101 and not (upgrade_asked and http11):
        raise HttpError(502, "101 Switching Protocols to a request that asked for no upgrade")
    return Response(status, length, chunked, reusable, location)


def _field_block(head: bytes, line_end: int, status: int) -> bytes:
    """The field lines of HEAD (after the start line, each with its CRLF),
    validated as a block by one expression; the slow per-line look only runs
    to say what was wrong."""
    if not _FIELD_LINES.fullmatch(head, line_end + 2, len(head) - 2):
        raise HttpError(status, _what_is_wrong(head[line_end + 2 : -4].split(b"\r\n")))
    fields = head[line_end + 2 : -2]
    if fields.count(b"\n") > MAX_FIELDS:
        raise HttpError(431 if status == 400 else status, f"more than {MAX_FIELDS} header fields")
    return fields


def _what_is_wrong(lines: list[bytes]) -> str:
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            return "obs-fold (a header line starting with whitespace)"
        name, colon, value = line.partition(b":")
        if not colon:
            return "header line without a colon"
        if name != name.rstrip(_OWS):
            return "whitespace between a header name and its colon"
        if not _FIELD_NAME.fullmatch(name):
            return "invalid header name"
        if not _FIELD_VALUE.fullmatch(value):
            return "control character in a header value"
    return "malformed header fields"


def _length(value: bytes, status: int) -> int:
    value = value.strip(_OWS)
    if not value.isdigit() or len(value) > MAX_LENGTH_DIGITS:
        raise HttpError(status, "invalid Content-Length")
    return int(value)


# --- bodies ---------------------------------------------------------------------------


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
    came; only the size lines (and trailers) are read, to know where the message
    ends. LIMIT: the most data bytes allowed (0: no limit), 413 beyond."""

    __slots__ = ("done", "fields", "limit", "line", "remaining", "state", "total")
    SIZE, DATA, CRLF, TRAILER = range(4)

    def __init__(self, limit: int = 0) -> None:
        self.state = self.SIZE
        self.remaining = 0
        self.line = b""
        self.done = False
        self.limit = limit
        self.total = 0
        self.fields = 0  # trailer bytes so far

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
            bound = MAX_CHUNK_LINE if self.state == self.SIZE else MAX_HEAD
            if end < 0:
                self.line += data[i:]
                if len(self.line) > bound:
                    raise FramingError("chunk size line or trailer too long")
                return n
            line = self.line + data[i:end]
            self.line = b""
            i = end + 1
            if not line.endswith(b"\r") or len(line) > bound + 1:
                raise FramingError("chunk line not ending with CRLF, or too long")
            line = line[:-1]
            if self.state == self.TRAILER:
                self._trailer(line)
                continue
            match = _CHUNK_LINE.fullmatch(line)
            if match is None:
                raise FramingError("bad chunk size line")
            size = int(match.group(1), 16)
            if size >= 1 << 63:
                raise FramingError("chunk size too large")
            self.total += size
            if self.limit and self.total > self.limit:
                raise FramingError(f"body larger than {self.limit} bytes", 413)
            self.remaining = size
            self.state = self.DATA if size else self.TRAILER
        return i

    def _trailer(self, line: bytes) -> None:
        if not line:
            self.done = True
            return
        self.fields += len(line) + 2
        if self.fields > MAX_HEAD or not _FIELD_LINES.fullmatch(line + b"\r\n"):
            raise FramingError("bad or oversized trailer field")


def request_body(request: Request, limit: int = 0) -> LengthBody | ChunkedBody | None:
    """How REQUEST's body is framed (None: it has none). LIMIT: the largest
    body allowed (0: no limit); a longer declared length is a 413 now."""
    if request.chunked:
        return ChunkedBody(limit)
    if request.length:
        if limit and request.length > limit:
            raise HttpError(413, f"body larger than {limit} bytes")
        return LengthBody(request.length)
    return None


def response_body(response: Response, method: bytes) -> tuple[LengthBody | ChunkedBody, bool]:
    """How RESPONSE's body (to a METHOD request) is framed, and whether it ends
    only when the server closes (no length: RFC 9112 6.3 rule 8)."""
    if method == b"HEAD" or response.status in _NO_BODY_STATUS:
        return LengthBody(0), False
    if response.chunked:
        return ChunkedBody(), False
    if response.length is not None:
        return LengthBody(response.length), False
    return LengthBody(1 << 62), True
