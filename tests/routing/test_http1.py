"""routing/router/http1.py as pure functions of bytes: what RFC 9112 says to
accept is accepted, what it says to reject is rejected with the right status."""

from __future__ import annotations

import pytest

from routing.router.http1 import (
    MAX_FIELDS,
    MAX_HEAD,
    ChunkedBody,
    FramingError,
    HttpError,
    LengthBody,
    head_end,
    leading_empty_lines,
    parse_request,
    parse_response,
    request_body,
    response_body,
)


def request(*fields: bytes, line: bytes = b"GET /user/a/x HTTP/1.1") -> bytes:
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def response(*fields: bytes, line: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return request(*fields, line=line)


# --- where a head ends ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\nBODY", 27),
        (b"GET / HTTP/1.1\r\nHost: h\r\n", -1),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r", -1),  # a CR at the end may be a CRLF
        (b"GET / HTTP/1.1\r\n\r\n", 18),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\nbody with a bare \n LF", 27),  # not the head's
    ],
)
def test_head_end_finds_the_empty_line(data, end):
    assert head_end(data) == end


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: h\n\n",  # bare LF: answered at once, never waited on
        b"GET / HTTP/1.1\nHost: h",
        b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",  # bare CR
        b"GET / HTTP/1.1\r\nHost: h\r\n\n",
    ],
)
def test_bare_line_endings_are_a_400_at_once(data):
    with pytest.raises(HttpError) as error:
        head_end(data)
    assert error.value.status == 400


def test_a_head_over_the_limit_is_a_431_and_a_response_one_a_502():
    data = b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD
    with pytest.raises(HttpError) as error:
        head_end(data)
    assert error.value.status == 431
    with pytest.raises(HttpError) as error:
        head_end(data, status=502)
    assert error.value.status == 502


def test_a_head_scanned_in_pieces_finds_the_same_end():
    data = request(b"Host: h", b"X-A: 1")
    scanned = 0
    for cut in range(1, len(data)):
        assert head_end(data[:cut], scanned) == -1
        scanned = cut
    assert head_end(data, scanned) == len(data)


def test_a_bare_lf_split_across_reads_is_still_seen():
    assert head_end(b"GET / HTTP/1.1\r") == -1
    with pytest.raises(HttpError):
        head_end(b"GET / HTTP/1.1\rX", 15)


def test_empty_lines_before_a_request_line_are_skipped():
    assert leading_empty_lines(b"\r\n\r\nGET") == 4
    assert leading_empty_lines(b"GET") == 0


# --- request heads --------------------------------------------------------------------


def test_an_ordinary_request_is_parsed():
    parsed = parse_request(
        request(b"Host: hub.example.org:8000", b"Content-Length: 5", b"X-Forwarded-For: 1.2.3.4"),
        (b"x-forwarded-for",),
    )
    assert parsed.method == b"GET" and parsed.target == b"/user/a/x"
    assert parsed.host == b"hub.example.org:8000" and parsed.length == 5
    assert parsed.fields == b"Host: hub.example.org:8000\r\nContent-Length: 5\r\n"
    assert parsed.keep_alive and not parsed.chunked and not parsed.upgrade


@pytest.mark.parametrize(
    ("fields", "line", "keep_alive", "upgrade"),
    [
        ((b"Host: h", b"Connection: close"), b"GET / HTTP/1.1", False, False),
        ((b"Host: h",), b"GET / HTTP/1.0", False, False),
        ((b"Connection: keep-alive",), b"GET / HTTP/1.0", True, False),
        ((b"Host: h", b"Connection: Upgrade", b"Upgrade: ws"), b"GET / HTTP/1.1", True, True),
        ((b"Host: h", b"Upgrade: websocket"), b"GET / HTTP/1.1", True, False),
    ],
)
def test_connection_options(fields, line, keep_alive, upgrade):
    parsed = parse_request(request(*fields, line=line))
    assert (parsed.keep_alive, parsed.upgrade) == (keep_alive, upgrade)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (request(b"Host: h", line=b"GET /  HTTP/1.1"), 400),
        (request(b"Host: h", line=b"GET / HTTP/1.1 x"), 400),
        (request(b"Host: h", line=b"G(T / HTTP/1.1"), 400),
        (request(b"Host: h", line=b"GET /\x7f HTTP/1.1"), 400),
        (request(b"Host: h", line=b"GET / HTTP/2.0"), 505),
        (request(b"Host: h", line=b"GET / HTTP/1.10"), 400),
        (request(b"Host: h", line=b"GET / http/1.1"), 400),
        (request(), 400),  # HTTP/1.1 without Host
        (request(b"Host: a", b"Host: b"), 400),
        (request(b"Host: a b"), 400),
        (request(b"Host: h", b"X: a\x00b"), 400),  # NUL
        (request(b"Host: h", b"X: a\x01b"), 400),  # another control character
        (request(b"Host: h", b"X: a\x7fb"), 400),
        (request(b"Host: h", b"X: a", b" folded"), 400),  # obs-fold
        (request(b"Host: h", b"X : a"), 400),  # whitespace before the colon
        (request(b"Host: h", b"X(y): a"), 400),  # not a token
        (request(b"Host: h", b": a"), 400),
        (request(b"Host: h", b"no colon"), 400),
        (request(b"Host: h", b"Content-Length: 1", b"Content-Length: 1"), 400),
        (request(b"Host: h", b"Content-Length: 1, 1"), 400),
        (request(b"Host: h", b"Content-Length: +1"), 400),
        (request(b"Host: h", b"Content-Length: 0x1"), 400),
        (request(b"Host: h", b"Content-Length: " + b"9" * 19), 400),
        (request(b"Host: h", b"Content-Length: 3", b"Transfer-Encoding: chunked"), 400),
        (request(b"Host: h", b"Transfer-Encoding: xchunked"), 501),
        (request(b"Host: h", b"Transfer-Encoding: gzip, chunked"), 501),
        (request(b"Host: h", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), 501),
        (request(b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.0"), 400),
        (request(b"Host: h", *[b"X-%d: y" % i for i in range(MAX_FIELDS)]), 431),
    ],
)
def test_requests_rfc_9112_rejects_are_rejected(head, status):
    with pytest.raises(HttpError) as error:
        parse_request(head)
    assert error.value.status == status


def test_the_rejection_says_what_was_wrong():
    with pytest.raises(HttpError, match="obs-fold"):
        parse_request(request(b"Host: h", b"X: a", b"\tb"))
    with pytest.raises(HttpError, match="control character"):
        parse_request(request(b"Host: h", b"X: \x00"))
    with pytest.raises(HttpError, match="more than one Host"):
        parse_request(request(b"Host: h", b"host: h"))


@pytest.mark.parametrize(
    ("head", "limit", "framing"),
    [
        (request(b"Host: h"), 0, None),
        (request(b"Host: h", b"Content-Length: 0"), 0, None),
        (request(b"Host: h", b"Content-Length: 10"), 10, LengthBody),
        (request(b"Host: h", b"Transfer-Encoding: Chunked"), 10, ChunkedBody),
    ],
)
def test_request_body_framing(head, limit, framing):
    body = request_body(parse_request(head), limit)
    assert (type(body) if body is not None else None) is framing


def test_a_declared_body_over_the_limit_is_a_413():
    with pytest.raises(HttpError) as error:
        request_body(parse_request(request(b"Host: h", b"Content-Length: 11")), 10)
    assert error.value.status == 413


# --- response heads -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "method", "length", "until_close", "reusable"),
    [
        (response(b"Content-Length: 5"), b"GET", 5, False, True),
        (response(b"Content-Length: 5", b"Content-Length: 5"), b"GET", 5, False, True),
        (response(b"Content-Length: 5"), b"HEAD", 0, False, True),
        (response(line=b"HTTP/1.1 204 No Content"), b"GET", 0, False, True),
        (response(line=b"HTTP/1.1 304 Not Modified"), b"GET", 0, False, True),
        (response(line=b"HTTP/1.1 200"), b"GET", 1 << 62, True, True),  # no reason phrase
        (response(b"Content-Length: 1", b"Connection: close"), b"GET", 1, False, False),
        (response(b"Content-Length: 1", line=b"HTTP/1.0 200 OK"), b"GET", 1, False, False),
    ],
)
def test_response_framing(head, method, length, until_close, reusable):
    parsed = parse_response(head, upgrade_asked=False)
    body, ends_at_close = response_body(parsed, method)
    assert isinstance(body, LengthBody) and body.remaining == length
    assert ends_at_close == until_close and parsed.reusable == reusable


def test_a_chunked_response_is_walked_as_chunks():
    parsed = parse_response(response(b"Transfer-Encoding: chunked"), upgrade_asked=False)
    assert isinstance(response_body(parsed, b"GET")[0], ChunkedBody)


@pytest.mark.parametrize(
    "head",
    [
        response(b"Transfer-Encoding: xchunked", b"Content-Length: 5"),
        response(b"Transfer-Encoding: chunked", b"Content-Length: 5"),
        response(b"Transfer-Encoding: gzip"),
        response(b"Transfer-Encoding: gzip, chunked"),
        response(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
        response(b"Transfer-Encoding: chunked", line=b"HTTP/1.0 200 OK"),
        response(b"Content-Length: 5", b"Content-Length: 6"),
        response(b"Content-Length: -5"),
        response(b"X: a\x00b"),
        response(b"X: a", b" folded"),
        response(line=b"HTTP/1.1 20 OK"),
        response(line=b"HTTP/1.1 099 Low"),
        response(line=b"HTTP/1.1 600 High"),
        response(line=b"HTTP/1.1 200 OK\x01"),
        response(line=b"HTTP/2 200 OK"),
        response(line=b"ICY 200 OK"),
        response(b"Upgrade: websocket", line=b"HTTP/1.1 101 Switching Protocols"),
    ],
)
def test_responses_rfc_9112_rejects_are_a_502(head):
    with pytest.raises(HttpError) as error:
        parse_response(head, upgrade_asked=False)
    assert error.value.status == 502


def test_a_101_is_only_valid_when_an_upgrade_was_asked_for():
    head = response(b"Upgrade: websocket", line=b"HTTP/1.1 101 Switching Protocols")
    assert parse_response(head, upgrade_asked=True).status == 101
    with pytest.raises(HttpError, match="asked for no upgrade"):
        parse_response(head, upgrade_asked=False)


# --- chunked bodies -------------------------------------------------------------------

CHUNKED = b'5;ext=1\r\nhello\r\n0007 ; a = "q\\"x"\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n'


@pytest.mark.parametrize("split", range(1, len(CHUNKED)))
def test_chunked_end_is_found_wherever_the_bytes_are_split(split):
    body = ChunkedBody()
    assert body.feed(CHUNKED[:split], 0) == split and not body.done
    assert body.feed(CHUNKED[split:] + b"NEXT", 0) == len(CHUNKED) - split
    assert body.done and body.total == 12


@pytest.mark.parametrize(
    "bad",
    [
        b"zz\r\n",
        b"-1\r\n",
        b"+1\r\n",
        b" 1\r\n",  # whitespace before the size
        b"0x1\r\n",
        b"1" * 17 + b"\r\n",  # more than 16 hex digits
        b"8000000000000000\r\n",  # 2**63: would overflow a signed 64-bit size
        b"5\nhello\r\n",  # bare LF
        b"5\r\nhelloXX",  # data not followed by CRLF
        b"5;\r\n",  # an extension without a name
        b"5;a=\x01\r\n",
        b"5;" + b"a" * 5000,  # extensions without end
        b"5" + b" " * 5000,
        b"0\r\nX: a\x00b\r\n\r\n",  # a trailer that is not a field
        b"0\r\nX: a\n\r\n",
    ],
)
def test_broken_chunked_framing_is_an_error_not_a_guess(bad):
    with pytest.raises(FramingError):
        ChunkedBody().feed(bad, 0)


def test_chunked_data_over_the_limit_is_a_413():
    body = ChunkedBody(limit=8)
    body.feed(b"5\r\nhello\r\n", 0)
    with pytest.raises(FramingError) as error:
        body.feed(b"4\r\n", 0)
    assert error.value.status == 413


def test_length_body_stops_at_its_length():
    body = LengthBody(5)
    assert body.feed(b"abc", 0) == 3 and not body.done
    assert body.feed(b"xxdeNEXT", 2) == 4 and body.done
