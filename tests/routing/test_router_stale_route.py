"""A server restarted on a new port while the router still holds its old route
(the table lags the hub by up to one sync interval): the first request through
the router is answered by the new server, never with a 502.

The fake hub's table endpoints are held at the old table (`HubState.hold_table`),
so the router keeps the old route for as long as the test needs, on both data
paths: the relay (HTTP/1.1) and the mitmproxy hand-off (HTTP/1.0)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.live import Router
from tests.routing.fakes import HubState, Running

PATHS = {
    "relay": b"GET /user/moved/api HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "mitmproxy": b"GET /user/moved/api HTTP/1.0\r\nHost: h\r\n\r\n",
}


def ask(router: Router, request: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as sock:
        sock.sendall(request)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if status == 200 else {"text": body.decode()}


@pytest.fixture
def moved(hub_state: HubState, backend, start_router) -> Iterator[tuple[Router, Running]]:
    """The router routes /user/moved/ to server `old`, which then stops; server
    `new` takes its place at the hub, on another port, but the router's table
    is held at the old route."""
    old = backend("old")
    hub_state.set_route("/user/moved/", old.url)
    router = start_router()
    status, seen = ask(router, PATHS["relay"])
    assert status == 200 and seen["who"] == "old"
    hub_state.hold_table()
    old.stop()
    new = backend("new")
    hub_state.set_route("/user/moved/", new.url)
    yield router, new


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_server_restarted_on_a_new_port_answers_the_first_request(moved, hub_state, path):
    router, _new = moved
    status, seen = ask(router, PATHS[path])
    assert status == 200, seen
    assert seen["who"] == "new"
    assert "/user/moved/" in hub_state.lookups  # the refused route was looked up again


def test_the_new_route_is_kept_so_later_requests_go_straight_there(moved, hub_state):
    router, _new = moved
    assert ask(router, PATHS["relay"])[1]["who"] == "new"
    lookups = len(hub_state.lookups)
    assert ask(router, PATHS["relay"])[1]["who"] == "new"
    assert len(hub_state.lookups) == lookups


def test_a_route_the_hub_dropped_meanwhile_gets_the_hubs_page_not_a_502(moved, hub_state):
    router, _new = moved
    hub_state.set_route("/user/moved/", None)
    status, seen = ask(router, PATHS["relay"])
    assert status == 200 and seen["who"] == "hub"
    assert seen["path"] == "/hub/user/moved/api"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_server_that_is_down_for_the_hub_too_is_still_a_502(moved, hub_state, path):
    router, new = moved
    new.stop()  # the hub still has this route: nothing better to send it to
    status, answer = ask(router, PATHS[path])
    assert status == 502, answer
    assert "/user/moved/" in hub_state.lookups
