"""The native HTTP/1.1 relay (routing/router/relay.py) at the byte level:
bodies in pieces, keep-alive reuse, interim answers, and the hand-over to
mitmproxy of everything that is not an ordinary request (the framing itself,
as pure functions: test_http1.py). A real router process talks to a scripted
backend that records exactly what reached it."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import h11
import pytest

from tests.live import wait_for
from tests.routing.conftest import launch_router
from tests.routing.fakes import TOKEN, HubState, Running, make_hub

CHUNKED = b"5;ext=1\r\nhello\r\n0007\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"

# --- a backend that says exactly what it is told -------------------------------------


class Scripted(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.seen: list[tuple[bytes, bytes, dict[bytes, bytes], bytes]] = []
        self.connections = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ScriptedHandler(socketserver.BaseRequestHandler):
    """Parses requests with h11; answers by the last path segment:
    echo (body back), chunked (chunked answer with a trailer), until-close (no
    length, then close), close-after (answers, then closes the kept-alive socket),
    continue (100 Continue before reading the body), cut (dies mid-body)."""

    server: Scripted

    def handle(self) -> None:
        self.server.connections += 1
        sock = self.request
        leftover = b""
        while True:  # answers are written raw, so h11 parses one request per cycle
            conn = h11.Connection(h11.SERVER)
            if leftover:  # (empty bytes would mean EOF to h11)
                conn.receive_data(leftover)
            request, body = self._read_request(conn, sock)
            if request is None:
                return
            leftover = conn.trailing_data[0]
            headers = {k.lower(): v for k, v in request.headers}
            self.server.seen.append((request.method, request.target, headers, body))
            action = request.target.rstrip(b"/").rsplit(b"/", 1)[-1].split(b"?")[0]
            if not self._answer(action, request, body, sock):
                return

    def _read_request(self, conn: h11.Connection, sock: socket.socket) -> tuple:
        request, body = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if request is not None and request.method == b"POST" and not body:
                    expect = dict(request.headers).get(b"expect", b"")
                    if expect.lower() == b"100-continue":
                        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                data = sock.recv(65536)
                if not data:
                    return None, b""
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            else:
                return None, b""

    def _answer(
        self, action: bytes, request: h11.Request, body: bytes, sock: socket.socket
    ) -> bool:
        if action == b"chunked":
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nX-Done: 1\r\n\r\n"
            )
        elif action == b"until-close":
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
            return False
        elif action == b"close-after":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return False  # a keep-alive answer, then the server drops the socket
        elif action == b"cut":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little")
            return False
        elif request.method == b"HEAD":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        else:
            answer = body or request.target
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer)
            sock.sendall(head + answer)
        return True


@pytest.fixture(scope="module")
def relay_world() -> Iterator[tuple[Scripted, int]]:
    backend = Scripted()
    state = HubState()
    hub = Running(make_hub(state))
    state.set_route("/user/raw/", backend.url)
    router = launch_router(hub.url, TOKEN)
    yield backend, router.port
    router.stop()
    hub.stop()
    backend.shutdown()
    backend.server_close()


def exchange(port: int, data: bytes, until: bytes, timeout: float = 10) -> bytes:
    """Send DATA on one connection; read until UNTIL has been seen (or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until(sock, until)


def read_until(sock: socket.socket, until: bytes) -> bytes:
    got = b""
    while until not in got:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def get(path: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: hub.example.org\r\n" + extra + b"\r\n"


# --- ordinary requests -----------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order_on_one_connection(relay_world):
    _backend, port = relay_world
    data = get(b"/user/raw/one") + get(b"/user/raw/two") + get(b"/user/raw/three")
    got = exchange(port, data, b"/user/raw/three")
    assert got.count(b"HTTP/1.1 200 OK") == 3
    assert got.index(b"/user/raw/one") < got.index(b"/user/raw/two") < got.index(b"three")


def test_a_chunked_upload_reaches_the_server_whole_in_odd_pieces(relay_world):
    backend, port = relay_world
    head = b"POST /user/raw/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for i in range(0, len(CHUNKED), 3):
            sock.sendall(CHUNKED[i : i + 3])
            time.sleep(0.005)
        got = read_until(sock, b"hello, world")
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"hello, world")
    assert backend.seen[-1][3] == b"hello, world"


def test_a_chunked_answer_with_trailers_arrives_whole_and_the_connection_is_reused(relay_world):
    backend, port = relay_world
    before = backend.connections
    got = exchange(port, get(b"/user/raw/chunked") + get(b"/user/raw/after"), b"/user/raw/after")
    assert b"3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nX-Done: 1\r\n\r\n" in got
    assert got.endswith(b"/user/raw/after")
    assert backend.connections == before + 1  # one upstream socket for both


def test_expect_100_continue_passes_the_servers_interim_answer(relay_world):
    _backend, port = relay_world
    head = (
        b"POST /user/raw/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        assert read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"data")
        got = read_until(sock, b"data")
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"data")


def test_a_kept_alive_socket_the_server_closed_is_replaced_without_an_error(relay_world):
    _backend, port = relay_world
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(get(b"/user/raw/close-after"))
        assert read_until(sock, b"ok").endswith(b"ok")
        time.sleep(0.2)  # the server's close reaches the router first, or not: both work
        sock.sendall(get(b"/user/raw/next"))
        assert read_until(sock, b"/user/raw/next").startswith(b"HTTP/1.1 200 OK")


def test_an_answer_without_length_ends_when_the_server_closes(relay_world):
    _backend, port = relay_world
    got = exchange(port, get(b"/user/raw/until-close"), b"\r\n\r\nall of it\x00")
    assert got.endswith(b"\r\n\r\nall of it")


def test_a_server_dying_mid_body_cuts_the_client_connection(relay_world):
    _backend, port = relay_world
    got = exchange(port, get(b"/user/raw/cut"), b"never")
    assert got.endswith(b"only a little")  # then EOF: 1,000 bytes promised, 12 sent


def test_head_answers_have_no_body_and_the_connection_goes_on(relay_world):
    _backend, port = relay_world
    data = b"HEAD /user/raw/x HTTP/1.1\r\nHost: h\r\n\r\n" + get(b"/user/raw/then")
    got = exchange(port, data, b"/user/raw/then")
    assert got.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n")
    assert got.count(b"HTTP/1.1 200 OK") == 2


# --- what the relay hands to mitmproxy -------------------------------------------------


def test_http_1_0_is_answered_through_mitmproxy(relay_world):
    _backend, port = relay_world
    got = exchange(port, b"GET /user/raw/old HTTP/1.0\r\nHost: h\r\n\r\n", b"/user/raw/old")
    assert got.startswith(b"HTTP/1.0 200") or got.startswith(b"HTTP/1.1 200")
    assert got.endswith(b"/user/raw/old")


def test_an_oversized_head_is_refused_and_never_reaches_the_server(relay_world):
    backend, port = relay_world
    count = len(backend.seen)
    got = exchange(port, get(b"/user/raw/huge", b"X-Big: " + b"a" * 100_000 + b"\r\n"), b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert len(backend.seen) == count


def test_content_length_with_chunked_is_refused_so_nothing_can_be_smuggled(relay_world):
    backend, port = relay_world
    count = len(backend.seen)
    smuggle = (
        b"POST /user/raw/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /user/raw/smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    got = exchange(port, smuggle, b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400")
    time.sleep(0.2)
    assert not any(seen[1].endswith(b"smuggled") for seen in backend.seen[count:])


def test_a_path_trick_after_an_ordinary_request_is_refused_on_the_same_connection(relay_world):
    backend, port = relay_world
    data = get(b"/user/raw/fine") + get(b"/user/raw/../bob/")
    got = exchange(port, data, b"dot segment")
    assert got.startswith(b"HTTP/1.1 200 OK")
    assert b"HTTP/1.1 400" in got and b"dot segment" in got
    assert not any(b"bob" in seen[1] for seen in backend.seen)


def test_the_relay_can_be_turned_off(relay_world, monkeypatch):
    backend, _ = relay_world
    state = HubState()
    hub = Running(make_hub(state))
    state.set_route("/user/raw/", backend.url)
    monkeypatch.setenv("HUB_ROUTER_RELAY", "0")
    router = launch_router(hub.url, TOKEN)
    try:
        got = exchange(router.port, get(b"/user/raw/plain"), b"/user/raw/plain")
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"/user/raw/plain")
        wait_for(lambda: backend.seen[-1][1] == b"/user/raw/plain", timeout=5, what="request")
    finally:
        router.stop()
        hub.stop()


def test_subdomain_mode_relays_a_users_own_host_and_hands_the_rest_to_mitmproxy(relay_world):
    backend, _ = relay_world
    state = HubState()
    hub = Running(make_hub(state))
    state.set_route("/user/raw/", backend.url)
    state.set_route("/user/bob/", backend.url)
    router = launch_router(hub.url, TOKEN, extra=["--subdomain-host", "hub.example.org"])
    own = b"Host: raw.hub.example.org\r\n"
    try:
        data = (
            b"GET /user/raw/mine HTTP/1.1\r\n" + own + b"\r\n"
            b"GET /user/bob/theirs HTTP/1.1\r\n" + own + b"\r\n"
        )
        got = exchange(router.port, data, b"serves /user/raw/ only")
        assert got.startswith(b"HTTP/1.1 200 OK") and b"/user/raw/mine" in got
        assert b"HTTP/1.1 404" in got
        assert not any(seen[1].startswith(b"/user/bob/") for seen in backend.seen)
    finally:
        router.stop()
        hub.stop()


def test_a_miss_is_looked_up_and_the_connection_stays_on_the_relay(relay_world):
    """The relay's own 502 text on the last answer shows that the connection was
    never handed to mitmproxy after the lookups (mitmproxy answers in HTML)."""
    backend, _ = relay_world
    state = HubState()
    hub = Running(make_hub(state))
    router = launch_router(hub.url, TOKEN)
    try:
        state.set_route("/user/late/", backend.url)  # after the router's first sync
        state.set_route("/user/gone/", "http://127.0.0.1:9")  # nothing listens there
        data = get(b"/user/late/first") + get(b"/user/ghost/x") + get(b"/user/gone/y")
        got = exchange(router.port, data, b"cannot reach the server of /user/gone/")
        assert got.startswith(b"HTTP/1.1 200 OK") and b"/user/late/first" in got
        assert b'"path": "/hub/user/ghost/x"' in got  # the hub's page for a user with no server
        assert b"text/plain" in got.rsplit(b"HTTP/1.1 502", 1)[1]
        assert "/user/ghost/x" in state.lookups
    finally:
        router.stop()
        hub.stop()
