"""The router daemon as a real process between real HTTP servers (fake hub,
small backends, a WebSocket echo server)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
import requests
from websockets.sync.client import connect

from routing.router.client import SyncPolicy
from tests.live import wait_for
from tests.routing.conftest import launch_router
from tests.routing.fakes import TOKEN, HubState, RawHub, Running, make_backend, make_hub


def raw_get(router, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """GET with the path sent byte for byte (requests would normalise dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {"text": body.decode(errors="replace")}


def who(router, path: str) -> str:
    status, body = raw_get(router, path)
    return body.get("who", str(status))


@pytest.fixture
def alice_and_bob(hub_state, backend):
    alice, bob, bob_lab = backend("alice"), backend("bob"), backend("bob-lab")
    hub_state.set_route("/user/alice/", alice.url)
    hub_state.set_route("/user/bob/", bob.url)
    hub_state.set_route("/user/bob/lab/", bob_lab.url)
    return alice, bob, bob_lab


@pytest.fixture
def router(alice_and_bob, start_router):
    """A router of its own, for tests that change routes or the hub."""
    return start_router()


@pytest.fixture(scope="module")
def shared():
    """One router for the tests that only read routes (starting one costs seconds)."""
    state = HubState()
    servers = [Running(make_hub(state))]
    for prefix, name in [
        ("/user/alice/", "alice"),
        ("/user/bob/", "bob"),
        ("/user/bob/lab/", "bob-lab"),
    ]:
        servers.append(Running(make_backend(name)))
        state.set_route(prefix, servers[-1].url)
    router = launch_router(servers[0].url, TOKEN)
    yield router
    router.stop()
    for server in servers:
        server.stop()


def test_user_path_reaches_the_users_server_with_host_and_query_kept(shared):
    status, seen = raw_get(shared, "/user/alice/api/status?x=1", {"Host": "hub.example.org"})
    assert status == 200
    assert seen["who"] == "alice"
    assert seen["path"] == "/user/alice/api/status?x=1"
    assert seen["host"] == "hub.example.org"


@pytest.mark.parametrize("path", ["/hub/home", "/hub/api/users", "/", "/favicon.ico", "/user/"])
def test_everything_not_under_a_user_goes_to_the_hub_unchanged(shared, path):
    status, seen = raw_get(shared, path)
    assert (status, seen["who"], seen["path"]) == (200, "hub", path)


@pytest.mark.parametrize("relay", ["1", "0"], ids=["native-relay", "mitmproxy"])
def test_progress_streams_go_to_the_stream_server_the_rest_to_the_hub(
    fake_hub, backend, alice_and_bob, monkeypatch, relay
):
    monkeypatch.setenv("HUB_ROUTER_RELAY", relay)
    streams = backend("streams")
    router = launch_router(fake_hub.url, TOKEN, extra=["--stream-url", streams.url])
    try:
        progress = "/hub/api/users/alice/servers/lab/progress?_xsrf=1"
        status, seen_by = raw_get(router, progress)
        assert (status, seen_by["who"], seen_by["path"]) == (200, "streams", progress)
        assert who(router, "/hub/api/users/alice/servers/lab") == "hub"
        assert who(router, "/hub/api/users/alice/server/progress") == "streams"
        assert who(router, "/user/alice/api/users/alice/server/progress") == "alice"
        # one client connection, kept alive, moving between the hub and the stream server
        conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
        seen = []
        for path in ("/hub/api", progress, "/hub/api", progress):
            conn.request("GET", path)
            seen.append(json.loads(conn.getresponse().read())["who"])
        conn.close()
        assert seen == ["hub", "streams", "hub", "streams"]
    finally:
        router.stop()


@pytest.mark.parametrize("relay", ["1", "0"], ids=["native-relay", "mitmproxy"])
def test_a_router_with_two_hubs_keeps_serving_when_one_dies(
    hub_state, backend, alice_and_bob, monkeypatch, relay
):
    """Two hubs on one "database" (one HubState): while the first is up it gets
    everything; once it is gone, pages, progress streams and route syncs go to
    the second, and a route added after the first hub died still arrives."""
    monkeypatch.setenv("HUB_ROUTER_RELAY", relay)
    first, second = Running(make_hub(hub_state, "hub-1")), Running(make_hub(hub_state, "hub-2"))
    hubs = f"{first.url},{second.url}"
    router = launch_router(hubs, TOKEN, extra=["--stream-url", hubs])
    try:
        progress = "/hub/api/users/alice/server/progress"
        assert [who(router, path) for path in ("/hub/home", progress)] == ["hub-1", "hub-1"]
        assert who(router, "/user/alice/") == "alice"
        first.stop()
        # every request finds the live hub, on a new connection or a kept-alive one
        assert [who(router, path) for path in ("/hub/home", progress)] == ["hub-2", "hub-2"]
        conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
        for path in ("/hub/api", progress, "/hub/api"):
            conn.request("GET", path)
            assert json.loads(conn.getresponse().read())["who"] == "hub-2"
        conn.close()
        carol = backend("carol")
        hub_state.set_route("/user/carol/", carol.url)
        wait_for(lambda: who(router, "/user/carol/") == "carol", timeout=15, what="carol's route")
        assert who(router, "/user/alice/") == "alice"
    finally:
        router.stop()
        second.stop()


def hang_up(conn: socket.socket, _: int) -> None:
    """A "hub" that reads the request and closes without a byte of answer:
    what a hub killed mid-request looks like to the router."""
    conn.recv(65536)
    conn.close()


def test_a_request_the_dying_hub_never_answered_is_replayed_only_if_idempotent(
    hub_state, alice_and_bob
):
    """The first hub takes the connection and hangs up without answering. A GET
    (no body) is sent again to the second hub; a POST is not (it may have been
    done): the client gets the 502, as with one hub."""
    dying, alive = RawHub(hang_up), Running(make_hub(hub_state, "hub-2"))
    routers = [launch_router(f"{dying.url},{alive.url}", TOKEN, workers=1) for _ in range(2)]
    try:
        status, seen = raw_get(routers[0], "/hub/home")
        assert (status, seen["who"]) == (200, "hub-2")
        conn = http.client.HTTPConnection("127.0.0.1", routers[1].port, timeout=10)
        conn.request("POST", "/hub/api/users/alice/server", body=b"{}")
        response = conn.getresponse()
        assert response.status == 502
        response.read()
        conn.close()
        # the hub that hung up is passed over from then on: the next POST is answered
        conn = http.client.HTTPConnection("127.0.0.1", routers[1].port, timeout=10)
        conn.request("POST", "/hub/api/users/alice/server", body=b"{}")
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["who"]) == (200, "hub-2")
        conn.close()
    finally:
        for router in routers:
            router.stop()
        dying.close()
        alive.stop()


def test_user_without_route_goes_to_the_hubs_user_page_with_query_kept(shared):
    _, seen = raw_get(shared, "/user/carol/lab/tree?reset=1")
    assert (seen["who"], seen["path"]) == ("hub", "/hub/user/carol/lab/tree?reset=1")


def test_named_server_prefix_beats_the_default_server(shared):
    assert who(shared, "/user/bob/lab/tree") == "bob-lab"
    assert who(shared, "/user/bob/other/tree") == "bob"
    assert who(shared, "/user/bob/") == "bob"


def test_forwarded_headers_are_set_by_the_router_not_the_client(shared):
    forged = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Host": "hub.example.org",
    }
    _, seen = raw_get(shared, "/user/alice/", forged)
    assert (seen["xff"], seen["xfproto"], seen["xfhost"]) == (
        "127.0.0.1",
        "http",
        "hub.example.org",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/user/alice/../bob/",
        "/user/alice/./../bob/api",
        "/user/alice/%2e%2e/bob/",
        "/user/alice/%2E%2e/bob/",
        "/user/%2e%2e/bob/",
        "/user/alice%2F..%2Fbob/",
        "/user/alice/%2Fbob/",
        "/user/alice%5c..%5cbob/",
        "/user/alice\\..\\bob/",
        "/user/alice/lab/../../bob/",
    ],
)
def test_path_tricks_are_refused_with_400(shared, path):
    status, body = raw_get(shared, path)
    assert status == 400, body


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("//user//bob//", "bob"),
        ("/user//alice/x", "alice"),
        ("/user/Alice/", "hub"),
        ("/USER/alice/", "hub"),
        ("/user/alic/", "hub"),
        ("/user/alicex/", "hub"),
        ("/user/bo/lab/", "hub"),
    ],
)
def test_double_slashes_and_case_never_change_whose_server_is_chosen(shared, path, expected):
    assert who(shared, path) == expected


def test_a_miss_is_resolved_by_an_immediate_lookup(hub_state, backend, router):
    dave = backend("dave")
    hub_state.set_route("/user/dave/", dave.url)
    assert who(router, "/user/dave/api") == "dave"  # first request, no waiting for a sync


def test_a_flood_for_unknown_users_is_absorbed_by_the_negative_cache(hub_state, router):
    """At most one lookup per negative-cache window (25 ms) per worker, plus the
    ones in flight, however many requests come: the bound is counted from the
    flood's own duration, so a slow machine does not make it flaky."""
    requests_sent = 5 * 40

    def hammer() -> None:
        for _ in range(requests_sent // 5):
            raw_get(router, "/user/ghost/api")

    threads = [threading.Thread(target=hammer) for _ in range(5)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    windows = (time.monotonic() - started) / SyncPolicy().negative_ttl + 1
    ghost_lookups = [p for p in hub_state.lookups if p.startswith("/user/ghost/")]
    assert 1 <= len(ghost_lookups) <= windows + 5  # the fixture runs one worker
    assert len(ghost_lookups) < requests_sent


def test_removed_route_sends_traffic_to_the_hub_page(hub_state, router):
    assert who(router, "/user/alice/") == "alice"
    hub_state.set_route("/user/alice/", None)
    wait_for(lambda: who(router, "/user/alice/") == "hub", timeout=5, what="route removal")


def test_server_restarted_on_a_new_port_is_never_reached_at_the_old_one(hub_state, backend, router):
    # the old address keeps answering (as if another process took the port)
    moved = backend("alice-restarted")
    hub_state.set_route("/user/alice/", moved.url)
    wait_for(lambda: who(router, "/user/alice/") == "alice-restarted", timeout=5, what="new route")
    assert {who(router, "/user/alice/x") for _ in range(30)} == {"alice-restarted"}


def test_hub_down_keeps_serving_the_last_table(hub_state, router):
    hub_state.down = True
    wait_for(lambda: who(router, "/user/alice/") == "alice", timeout=5, what="alice")
    # still routed after several failed pulls
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert who(router, "/user/bob/lab/") == "bob-lab"
    hub_state.down = False


def test_unauthorised_router_token_never_invents_routes(fake_hub, alice_and_bob):
    router = launch_router(fake_hub.url, "wrong-token")
    try:
        assert who(router, "/user/alice/") == "hub"
    finally:
        router.stop()


def test_activity_is_reported_to_the_hub_in_batches(hub_state, alice_and_bob, start_router):
    router = start_router(extra=["--activity-interval", "0.2"])
    raw_get(router, "/user/alice/api")
    raw_get(router, "/user/bob/lab/api")

    def reported() -> set[str]:
        return {p for batch in hub_state.activity for p in batch}

    wait_for(lambda: {"/user/alice/", "/user/bob/lab/"} <= reported(), timeout=5, what="report")


def test_websockets_pass_through_several_workers(hub_state, echo_backend, start_router):
    hub_state.set_route("/user/alice/", echo_backend.url)
    router = start_router(workers=2)
    for n in range(6):  # several connections: the kernel spreads them over workers
        with connect(f"ws://127.0.0.1:{router.port}/user/alice/api/kernels/k{n}/channels") as ws:
            for i in range(20):
                ws.send(f"msg {n} {i}")
                assert ws.recv() == f"msg {n} {i}"


def test_supervisor_restarts_a_dead_worker(hub_state, alice_and_bob, start_router):
    router = start_router(workers=2)
    children = _children(router.proc.pid)
    assert len(children) == 2
    import os
    import signal

    os.kill(children[0], signal.SIGKILL)
    wait_for(
        lambda: len(set(_children(router.proc.pid)) - {children[0]}) == 2,
        timeout=15,
        what="a replacement worker",
    )
    wait_for(lambda: who(router, "/user/alice/") == "alice", timeout=10, what="alice")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class _Zeros:
    """A 100 MiB request body produced on the fly (known length, never in memory)."""

    def __init__(self, size: int) -> None:
        self.left = self.size = size

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def test_100mb_upload_and_download_stream_with_bounded_router_memory(shared):
    base = _rss_kib(shared.proc.pid)
    up = requests.post(f"{shared.url}/user/alice/upload", data=_Zeros(100 << 20), timeout=60)
    assert up.json() == {"who": "alice", "received": 100 << 20}
    got = 0
    with requests.get(f"{shared.url}/user/alice/big/100", stream=True, timeout=60) as down:
        for chunk in down.iter_content(1 << 20):
            got += len(chunk)
    assert got == 100 << 20
    peak = _rss_kib(shared.proc.pid, "VmHWM")
    assert peak - base < 60 * 1024, f"router RSS rose {(peak - base) // 1024} MiB"


def test_1000_websocket_messages_of_1mb_do_not_grow_router_memory(
    hub_state, echo_backend, start_router
):
    hub_state.set_route("/user/alice/", echo_backend.url)
    router = start_router()
    payload = b"k" * (1 << 20)
    # the backend answers each message with its size: 1 GB one way through the router
    url = f"ws://127.0.0.1:{router.port}/user/alice/api/kernels/k/sink"
    with connect(url, max_size=None) as ws:
        for _ in range(20):  # warm up buffers before the baseline
            ws.send(payload)
            ws.recv()
        base = _rss_kib(router.proc.pid)
        for _ in range(1000):
            ws.send(payload)
            assert ws.recv() == str(len(payload))
        grown = _rss_kib(router.proc.pid) - base
    assert grown < 100 * 1024, f"router RSS grew {grown // 1024} MiB over 1 GB of messages"


def test_router_modules_do_not_import_django():
    import subprocess
    import sys

    code = (
        "import sys, routing.router.table, routing.router.client, routing.router.addon, "
        "routing.router.__main__; print('django' in sys.modules)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "False"


def test_port_in_use_fails_at_start_with_a_clear_error(fake_hub):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match=r"(?i)address already in use"):
            router = launch_router(fake_hub.url, "t", extra=["--listen", f"127.0.0.1:{port}"])
            router.stop()
