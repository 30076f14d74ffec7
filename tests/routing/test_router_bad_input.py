"""Hostile input through the real router, on raw sockets, on both data paths:
the native relay (an HTTP/1.1 connection) and a connection handed to mitmproxy
(an HTTP/1.0 keep-alive request first, then the hostile input on the same
connection: what triggers the hand-off).

Every case is answered with the status RFC 9112 calls for (or closed), nothing
of it reaches the server, and the server never receives anything a strict
parser (h11) refuses: the backend parses every byte it gets with h11 and
records what it could not parse. Servers answering badly get a 502, never a
tunnel, on both paths: handed off, mitmproxy reads the server's answer itself,
but only once the relay's parser passed its head (routing/router/
strict_answers.py), so the client gets mitmproxy's 502 and the close, none of
the bad answer, and nothing pipelined behind it reaches the server. The
router's limits are shortened by its options for the slow-client cases
(`--head-timeout`, `--idle-timeout`), and `--max-body-size` is set."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11
import pytest

from tests.live import Router, launch_router, wait_for
from tests.routing.fakes import TOKEN, HubState, Running, make_hub

MAX_BODY = 1000


class StrictBackend(socketserver.ThreadingTCPServer):
    """Answers requests it parsed with h11; `refused` lists what h11 refused.
    The last path segment picks a bad answer (see BAD_ANSWERS)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StrictHandler)
        self.targets: list[bytes] = []
        self.refused: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


WS_FRAME = b"\x81\x02hi"  # a server's WebSocket text frame, unmasked
BAD_ANSWERS = {
    b"xchunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n"
    b"0\r\n\r\n",
    b"gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
    b"cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    b"nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    b"bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    b"garbage": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
    b"huge-head": b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n",
}


class _StrictHandler(socketserver.BaseRequestHandler):
    """One h11 cycle per request (answers are written raw, so HTTP/1.0
    keep-alive, which h11 does not do, works as mitmproxy expects)."""

    server: StrictBackend

    def handle(self) -> None:
        sock = self.request
        leftover = b""
        while True:
            conn = h11.Connection(h11.SERVER)
            if leftover:
                conn.receive_data(leftover)
            try:
                target = self._request(conn, sock)
            except h11.RemoteProtocolError as exc:
                self.server.refused.append(str(exc))
                return
            if target is None:
                return
            action = target.rsplit(b"/", 1)[-1]
            if action in BAD_ANSWERS:
                sock.sendall(BAD_ANSWERS[action])
                return
            if action == b"pieces":  # a good answer, its head in many reads
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                answer = b"HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 2\r\n\r\nok"
                for i in range(0, len(answer), 5):
                    sock.sendall(answer[i : i + 5])
                    time.sleep(0.01)
                leftover = conn.trailing_data[0]
                continue
            if action == b"upgrade":  # a WebSocket when asked for one, then a frame
                sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" + WS_FRAME
                )
                while sock.recv(65536):
                    pass
                return
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
            )
            leftover = conn.trailing_data[0]

    def _request(self, conn: h11.Connection, sock: socket.socket) -> bytes | None:
        target = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                if not data:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                target = event.target
                self.server.targets.append(target)
            elif isinstance(event, h11.EndOfMessage):
                return target
            elif isinstance(event, h11.ConnectionClosed):
                return None


@dataclass
class World:
    backend: StrictBackend
    router: Router


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    backend = StrictBackend()
    state = HubState()
    hub = Running(make_hub(state))
    state.set_route("/user/bad/", backend.url)
    options = ["--head-timeout", "1", "--idle-timeout", "3", "--max-body-size", str(MAX_BODY)]
    router = launch_router(hub.url, TOKEN, extra=options)
    yield World(backend, router)
    router.stop()
    hub.stop()
    backend.shutdown()
    backend.server_close()


def read_answer(sock: socket.socket) -> tuple[int | None, bytes]:
    """One answer (status, head + body by Content-Length); None: closed first."""
    got = b""
    while b"\r\n\r\n" not in got:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None, got
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1]), head + b"\r\n\r\n" + body


def connect(world: World, path: str) -> socket.socket:
    """A connection on PATH: the relay's, or one handed to mitmproxy."""
    sock = socket.create_connection(("127.0.0.1", world.router.port), timeout=10)
    if path == "handed-off":
        sock.sendall(b"GET /user/bad/first HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
        status, answer = read_answer(sock)
        assert status == 200, answer
    return sock


def send(world: World, path: str, data: bytes) -> tuple[int | None, bytes]:
    with connect(world, path) as sock:
        # answered and closed before all was sent: the answer is still there
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_answer(sock)


def get(*fields: bytes, target: bytes = b"/user/bad/hostile", line: bytes = b"") -> bytes:
    start = line or b"GET " + target + b" HTTP/1.1"
    return start + b"\r\n" + b"".join(f + b"\r\n" for f in (b"Host: h", *fields)) + b"\r\n"


def post(body_head: bytes, body: bytes) -> bytes:
    return b"POST /user/bad/hostile HTTP/1.1\r\nHost: h\r\n" + body_head + b"\r\n\r\n" + body


CASES = {
    "NUL in a header": (get(b"X-A: a\x00b"), 400),
    "control character in a header": (get(b"X-A: a\x1bb"), 400),
    "DEL in a header": (get(b"X-A: a\x7fb"), 400),
    "bare CR in a header": (get(b"X-A: a\rb"), 400),
    "obs-fold": (get(b"X-A: a", b" folded"), 400),
    "a second Host": (get(b"Host: other"), 400),
    "space in a field name": (get(b"X A: b"), 400),
    "space before the colon": (get(b"X-A : b"), 400),
    "field without a colon": (get(b"X-A b"), 400),
    "bare-LF line endings": (b"GET /user/bad/hostile HTTP/1.1\nHost: h\n\n", 400),
    "bare LF in the middle": (b"GET /user/bad/hostile HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400),
    "Content-Length with chunked": (
        post(b"Content-Length: 4\r\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
        400,
    ),
    "Transfer-Encoding xchunked": (post(b"Transfer-Encoding: xchunked", b"0\r\n\r\n"), 501),
    "Transfer-Encoding gzip, chunked": (post(b"Transfer-Encoding: gzip, chunked", b""), 501),
    "two Content-Lengths": (post(b"Content-Length: 1\r\nContent-Length: 2", b"ab"), 400),
    "signed Content-Length": (post(b"Content-Length: +2", b"ab"), 400),
    "negative chunk size": (post(b"Transfer-Encoding: chunked", b"-1\r\n\r\n"), 400),
    "hex-prefixed chunk size": (post(b"Transfer-Encoding: chunked", b"0x2\r\nab\r\n"), 400),
    "space before a chunk size": (post(b"Transfer-Encoding: chunked", b" 2\r\nab\r\n"), 400),
    "overflowing chunk size": (post(b"Transfer-Encoding: chunked", b"1" * 17 + b"\r\n"), 400),
    "bare LF after a chunk size": (post(b"Transfer-Encoding: chunked", b"2\nab\r\n0\r\n\r\n"), 400),
    "endless chunk extension": (post(b"Transfer-Encoding: chunked", b"2;" + b"a" * 8000), 400),
    "HTTP/2.0 on HTTP/1 framing": (get(line=b"GET /user/bad/hostile HTTP/2.0"), 505),
    "HTTP/1.1 without Host": (b"GET /user/bad/hostile HTTP/1.1\r\n\r\n", 400),
    "head over 64 KiB": (get(b"X-A: " + b"a" * 70_000), 431),
    "a header that never ends": (get(b"X-A: " + b"a" * 200_000)[:-4], 431),
    "too many header fields": (get(*[b"X-%d: a" % i for i in range(150)]), 431),
    "declared body over the limit": (post(b"Content-Length: 5000", b"a" * 5000), 413),
    "chunked body over the limit": (
        post(b"Transfer-Encoding: chunked", b"%x\r\n" % 2000 + b"a" * 2000 + b"\r\n0\r\n\r\n"),
        413,
    ),
}


@pytest.mark.parametrize("path", ["relay", "handed-off"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_requests_are_refused_and_never_forwarded(world, path, case):
    data, expected = CASES[case]
    data = data.replace(b"/user/bad/hostile", f"/user/bad/{path}-{abs(hash(case))}".encode())
    status, answer = send(world, path, data)
    assert status == expected, answer
    assert b"Connection: close" in answer
    marker = f"{path}-{abs(hash(case))}".encode()
    assert not any(marker in target for target in world.backend.targets)
    assert world.backend.refused == []


@pytest.mark.parametrize("path", ["relay", "handed-off"])
def test_a_valid_request_still_goes_through_on_the_same_footing(world, path):
    status, answer = send(world, path, get(b"X-A: fine", target=b"/user/bad/fine"))
    assert status == 200 and answer.endswith(b"ok")
    assert world.backend.refused == []


@pytest.mark.parametrize("path", ["relay", "handed-off"])
@pytest.mark.parametrize("action", sorted(BAD_ANSWERS))
def test_a_servers_bad_answer_is_a_502_and_never_a_tunnel(world, path, action):
    """On both paths: a 502 and closed, and a request pipelined behind must
    not reach the server. Handed off, mitmproxy reads the server's answer
    itself; the client still gets only a 502 and the close, never any of the
    bad answer (nor a tunnel)."""
    tag = path.encode() + b"-" + action
    first = get(target=b"/user/bad/" + tag + b"/" + action)
    behind = get(target=b"/user/bad/behind-" + tag)
    with connect(world, path) as sock:
        sock.sendall(first + behind)
        status, answer = read_answer(sock)
        assert status == 502, answer
        assert b"Connection: close" in answer
        assert read_answer(sock)[0] is None  # and closed
    assert b"/user/bad/behind-" + tag not in world.backend.targets
    assert world.backend.refused == []


@pytest.mark.parametrize("path", ["relay", "handed-off"])
def test_a_good_answer_whose_head_comes_in_pieces_still_goes_through(world, path):
    with connect(world, path) as sock:
        sock.sendall(get(target=b"/user/bad/" + path.encode() + b"/pieces"))
        status, answer = read_answer(sock)
    assert status == 200 and b"X-A: b" in answer and answer.endswith(b"ok"), answer


@pytest.mark.parametrize("path", ["relay", "handed-off"])
def test_a_101_the_request_asked_for_is_still_a_websocket(world, path):
    upgrade = get(
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        target=b"/user/bad/upgrade",
    )
    with connect(world, path) as sock:
        sock.sendall(upgrade)
        got = b""
        while not got.endswith(WS_FRAME):
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
    assert got.startswith(b"HTTP/1.1 101 "), got
    assert world.backend.refused == []


@pytest.mark.parametrize("path", ["relay", "handed-off"])
def test_a_slow_client_is_answered_408_when_its_head_takes_too_long(world, path):
    """Slowloris: a byte at a time, never idle for long, the head never ends;
    --head-timeout 1 ends it (the loop would otherwise send for 30 s)."""
    with connect(world, path) as sock:
        sock.sendall(b"GET /user/bad/slow HTTP/1.1\r\nHost: h\r\n")
        sock.settimeout(0.2)
        got = b""
        for _ in range(150):
            try:
                sock.sendall(b"X")
                got += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if got:
                break
    assert got.startswith(b"HTTP/1.1 408 Request Timeout"), got
    assert b"/user/bad/slow" not in world.backend.targets


@pytest.mark.parametrize("path", ["relay", "handed-off"])
def test_a_silent_connection_is_closed_after_the_idle_timeout(world, path):
    with connect(world, path) as sock:
        sock.settimeout(30)  # --idle-timeout is 3 s
        assert sock.recv(1) == b""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


HOSTILE_FOR_MEMORY = [
    ("handed-off", get(b"X-A: " + b"a" * 200_000)[:-4]),  # finding 1: an endless header
    ("relay", get(b"X-A: " + b"a" * 200_000)[:-4]),
    ("handed-off", get(b"X-A: a\x00b")),
    ("relay", post(b"Transfer-Encoding: chunked", b"2;" + b"a" * 8000)),
    ("handed-off", post(b"Content-Length: 5000", b"a" * 5000)),
]


def test_worker_memory_is_back_within_10_percent_after_1000_hostile_connections(world):
    pid = world.router.proc.pid  # one worker: the router process itself (-O re-exec)

    def round_of(count: int) -> None:
        def one(i: int) -> None:
            path, data = HOSTILE_FOR_MEMORY[i % len(HOSTILE_FOR_MEMORY)]
            status, answer = send(world, path, data)
            assert status is not None and status >= 400, answer

        for start in range(0, count, 10):  # 10 at a time
            threads = [threading.Thread(target=one, args=(i,)) for i in range(start, start + 10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    round_of(50)  # warm every code path and its allocations up
    idle = wait_for(lambda: rss_kib(pid), timeout=5, what="RSS")
    round_of(1000)
    after = wait_for(
        lambda: (rss := rss_kib(pid)) <= idle * 1.1 and rss,
        timeout=30,
        what=f"worker RSS back within 10% of {idle} KiB (lingering sockets close in 2 s)",
    )
    print(json.dumps({"idle_kib": idle, "after_kib": after}))
    assert world.backend.refused == []
