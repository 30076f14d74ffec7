"""Request-head parsing cost: routing/router/http1.py vs h11 vs httptools (llhttp).

Why: issue 8 asks whether the relay should parse heads with a well-kept parser
(httptools/llhttp or h11) if that does not cost it its speed. The relay needs,
per request, the head's end, its validation (RFC 9112 rejects) and a handful of
fields (Host, Content-Length, Transfer-Encoding, Connection, Upgrade), with the
other field lines kept as sent so they are forwarded unchanged. This measures
exactly that on a browser-like head (14 fields, ~700 bytes), in-process, median
of 7 runs of 20,000 parses each.

    .venv/bin/python bench/parsers.py
    # httptools is not a dependency: to include it, in a throw-away venv
    python3.11 -m venv bench/.work/parsers-venv
    bench/.work/parsers-venv/bin/pip install httptools==0.9.0 h11==0.14.0
    PYTHONPATH=. bench/.work/parsers-venv/bin/python bench/parsers.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.router.http1 import head_end, parse_request

HEAD = (
    b"GET /user/alice/api/contents/work/notes.ipynb?content=1&_=1733050000000 HTTP/1.1\r\n"
    b"Host: hub.example.org\r\n"
    b"Connection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"\r\n'
    b"Accept: application/json, text/plain, */*\r\n"
    b"Authorization: token 0123456789abcdef0123456789abcdef\r\n"
    b"X-XSRFToken: 2|1a2b3c4d|0123456789abcdef0123456789abcdef|1733050000\r\n"
    b"sec-ch-ua-mobile: ?0\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: cors\r\n"
    b"Referer: https://hub.example.org/user/alice/lab/tree/work\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: _xsrf=2|1a2b3c4d|0123456789abcdef|1733050000; jupyterhub-user-alice=abc\r\n"
    b"\r\n"
)
N = 20_000


def ours() -> None:
    for _ in range(N):
        end = head_end(HEAD)
        parse_request(HEAD[:end], (b"x-forwarded-for",))


def with_h11() -> None:
    import h11

    for _ in range(N):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(HEAD)
        event = conn.next_event()
        assert isinstance(event, h11.Request)


def with_httptools() -> None:
    import httptools

    class Fields:
        def __init__(self) -> None:
            self.fields: list[tuple[bytes, bytes]] = []
            self.done = False

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields.append((name, value))

        def on_headers_complete(self) -> None:
            self.done = True

    for _ in range(N):
        sink = Fields()
        parser = httptools.HttpRequestParser(sink)
        parser.feed_data(HEAD)
        assert sink.done


def measure(fn) -> float:
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) / N * 1e6)
    return statistics.median(runs)


def main() -> int:
    rows = [("routing/router/http1.py (head_end + parse_request)", ours)]
    try:
        import h11

        rows.append((f"h11 {h11.__version__} (Connection + next_event)", with_h11))
    except ImportError:
        pass
    try:
        import httptools

        rows.append((f"httptools {httptools.__version__} (llhttp, callbacks)", with_httptools))
    except ImportError:
        print("httptools not installed: see the docstring to include it")
    print(f"request head of {len(HEAD)} bytes, {HEAD.count(b': ')} fields; µs per parse:")
    for name, fn in rows:
        print(f"  {name:58} {measure(fn):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
