"""HubClient's connection handling against real sockets: a kept-alive
connection the hub closed, a hub that refuses, a hub that is slow."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from routing.router.client import HubClient, HubUnavailable
from tests.routing.fakes import RawHub

QUIET = json.dumps({"version": "3", "full": False, "routes": {}}).encode()


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def answer(conn: socket.socket, body: bytes = QUIET) -> None:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)


@pytest.fixture
def hubs() -> Iterator[list[RawHub]]:
    made: list[RawHub] = []
    yield made
    for hub in made:
        hub.close()


def test_a_kept_alive_connection_the_hub_closed_is_replaced_for_the_next_pull(hubs):
    """The hub (gunicorn's keep-alive timeout) closes an idle connection
    without a word: the next GET fails on it and is sent again on a new one."""

    def one_answer_then_close(conn: socket.socket, _: int) -> None:
        read_head(conn)
        answer(conn)
        conn.close()

    hub = RawHub(one_answer_then_close)
    hubs.append(hub)
    client = HubClient(hub.url, "token", timeout=5)
    assert client.since("3").version == "3"
    assert client.since("3").version == "3"
    assert hub.connections == 2


def test_one_connection_carries_every_pull_while_the_hub_keeps_it(hubs):
    def keep_answering(conn: socket.socket, _: int) -> None:
        while read_head(conn):
            answer(conn)

    hub = RawHub(keep_answering)
    hubs.append(hub)
    client = HubClient(hub.url, "token", timeout=5)
    for _ in range(5):
        client.since("3")
    assert hub.connections == 1


def test_a_refused_hub_passes_the_call_to_the_next_one(hubs):
    closed = socket.create_server(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now: connections are refused

    def keep_answering(conn: socket.socket, _: int) -> None:
        while read_head(conn):
            answer(conn)

    live = RawHub(keep_answering)
    hubs.append(live)
    client = HubClient(f"{dead},{live.url}", "token", timeout=5)
    assert client.since("3").version == "3"
    assert client.api == live.url + "/hub/api/routes"


def test_a_slow_hub_is_unavailable_but_not_passed_over(hubs):
    """A read timeout means the hub is up and busy: another hub on the same
    database would be as slow, so the pool stays where it is."""
    release = threading.Event()

    def never_answer(conn: socket.socket, _: int) -> None:
        read_head(conn)
        release.wait(10)
        conn.close()

    slow = RawHub(never_answer)
    hubs.append(slow)
    other = RawHub(lambda conn, _: answer(conn) if read_head(conn) else None)
    hubs.append(other)
    client = HubClient(f"{slow.url},{other.url}", "token", timeout=0.3)
    try:
        with pytest.raises(HubUnavailable, match="timed out"):
            client.since("3")
        assert client.api == slow.url + "/hub/api/routes"
        assert other.connections == 0
    finally:
        release.set()


def test_every_call_carries_the_router_token_and_asks_for_json(hubs):
    seen: list[bytes] = []

    def record(conn: socket.socket, _: int) -> None:
        seen.append(read_head(conn))
        answer(conn)

    hub = RawHub(record)
    hubs.append(hub)
    HubClient(hub.url, "s3cret", timeout=5).since("3")
    head = seen[0].decode().lower()
    assert head.startswith("get /hub/api/routes?since=3 http/1.1")
    assert "authorization: token s3cret" in head
    assert "accept: application/json" in head
