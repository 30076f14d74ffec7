"""Spawn-progress streams on the stream server (servers.api.progress): the
same events as the hub's polled stream, from one database reader however many
people watch, through Django's real ASGI handler (what `python -m
hubsite.streams` serves). The streams through the real router and uvicorn are
in tests/servers/test_stream_server.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.test import AsyncClient

from servers.api import progress
from servers.models import Server, ServerEvent
from tests.factories import ServerFactory

Kind = ServerEvent.Kind
State = Server.State

pytestmark = pytest.mark.django_db(transaction=True)


def events_in(chunks: list[str]) -> list[dict]:
    body = "".join(chunks)
    return [json.loads(line[6:]) for line in body.split("\n") if line.startswith("data: ")]


def add_event(server: Server, kind: str, progress_: int = 0, message: str = "") -> ServerEvent:
    return ServerEvent.objects.create(server=server, kind=kind, progress=progress_, message=message)


async def collect(stream) -> list[str]:
    return [chunk async for chunk in stream]


@pytest.fixture
def starting(alice) -> Server:
    server = ServerFactory(user=alice, name="box", state=State.STARTING)
    add_event(server, Kind.START_REQUESTED, 0, "old start")
    add_event(server, Kind.FAILED, 100, "old failure")
    add_event(server, Kind.START_REQUESTED, 0, "Server requested")
    return server


@pytest.fixture
def fast_feed(monkeypatch):
    """The feed polls every 10 ms here, so the tests wait less."""
    monkeypatch.setattr(progress, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(progress, "_feeds", {})
    original = progress.ProgressFeed.__init__

    def fast(self, *, interval: float = 0.01) -> None:
        original(self, interval=interval)

    monkeypatch.setattr(progress.ProgressFeed, "__init__", fast)


def test_the_fed_stream_tells_the_story_the_polled_one_tells(starting, fast_feed):
    add_event(starting, Kind.PROGRESS, 50, "Waiting for the server")
    add_event(starting, Kind.READY, 100, "ready")
    url = "/user/alice/box/"
    polled = list(progress.polled_events(starting.pk, url))
    fed = asyncio.run(
        collect(progress.fed_events(starting.pk, url, progress.first_event_id(starting.pk)))
    )
    assert fed == polled
    assert events_in(fed) == [
        {"progress": 0, "message": "Server requested"},
        {"progress": 50, "message": "Waiting for the server"},
        progress.ready_event(url),
    ]


@pytest.mark.parametrize(
    ("kind", "ends", "shown"),
    [
        (Kind.START_REQUESTED, False, {"progress": 0, "message": "m"}),
        (Kind.PROGRESS, False, {"progress": 0, "message": "m"}),
        (Kind.RECONCILED, False, {"progress": 0, "message": "m"}),  # the start goes on
        (Kind.CULLED, False, {"progress": 0, "message": "m"}),  # its stop request ends it
        (Kind.READY, True, progress.ready_event("/u/")),
        (Kind.FAILED, True, progress.failed_event("m")),
        (Kind.STOP_REQUESTED, True, progress.failed_event("the server was stopped while starting")),
        (Kind.STOPPED, True, progress.failed_event("the server was stopped while starting")),
    ],
)
def test_what_each_event_kind_shows_and_whether_it_ends_the_stream(kind, ends, shown):
    assert progress.event_for(kind, 0, "m", "/u/") == (shown, ends)


def test_a_start_enqueued_again_by_reconcile_streams_on_to_ready(starting, fast_feed):
    """Its worker died mid-spawn: reconcile enqueues the start again (a
    RECONCILED event) and the watchers see it through to ready."""
    add_event(starting, Kind.PROGRESS, 30, "Starting the server")
    add_event(starting, Kind.RECONCILED, 0, "Start enqueued again: the worker is dead")
    add_event(starting, Kind.PROGRESS, 30, "Starting the server")
    add_event(starting, Kind.READY, 100, "ready")
    after = progress.first_event_id(starting.pk)
    polled = list(progress.polled_events(starting.pk, "/u/"))
    fed = asyncio.run(collect(progress.fed_events(starting.pk, "/u/", after)))
    assert fed == polled
    assert [event.get("ready", False) for event in events_in(fed)] == [False] * 4 + [True]


def test_a_fed_stream_follows_events_written_while_it_watches(starting, fast_feed):
    async def watch_then_write() -> list[str]:
        after = await sync_to_async(progress.first_event_id)(starting.pk)
        reading = asyncio.ensure_future(collect(progress.fed_events(starting.pk, "/u/", after)))
        for step in (10, 60):
            await asyncio.sleep(0.05)
            await sync_to_async(add_event)(starting, Kind.PROGRESS, step, f"step {step}")
        await sync_to_async(add_event)(starting, Kind.FAILED, 100, "image not found")
        return await asyncio.wait_for(reading, 10)

    events = events_in(asyncio.run(watch_then_write()))
    assert [event["progress"] for event in events] == [0, 10, 60, 100]
    assert events[-1] == progress.failed_event("image not found")


def test_a_fed_stream_ends_when_its_server_is_removed(starting, fast_feed):
    async def watch_then_delete() -> list[str]:
        after = await sync_to_async(progress.first_event_id)(starting.pk)
        reading = asyncio.ensure_future(collect(progress.fed_events(starting.pk, "/u/", after)))
        await asyncio.sleep(0.05)
        await sync_to_async(Server.objects.filter(pk=starting.pk).delete)()
        return await asyncio.wait_for(reading, 10)

    events = events_in(asyncio.run(watch_then_delete()))
    assert events[-1] == progress.failed_event("the server was removed")


def test_one_database_round_serves_every_watched_server(alice, django_assert_num_queries):
    """What makes 1,000 watchers cheap: each round is one query, not one per stream."""
    servers = [ServerFactory(user=alice, name=f"s{i}", state=State.STARTING) for i in range(50)]
    for server in servers:
        add_event(server, Kind.START_REQUESTED, 0, "Server requested")
        add_event(server, Kind.PROGRESS, 40, "pulling")
    wanted = {server.pk: 0 for server in servers}
    with django_assert_num_queries(1):
        rows, alive = progress._read_events(wanted)
    assert len(rows) == 100 and alive == set(wanted)
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)  # in the order written
    # a stream that has seen its server's first event is given only the rest
    first = servers[0].events.order_by("id").first()
    with django_assert_num_queries(1):
        rows, _ = progress._read_events({servers[0].pk: first.pk})
    assert [row[2] for row in rows] == [Kind.PROGRESS]


def test_a_round_sees_a_quiet_server_alive_and_a_removed_one_gone(alice):
    quiet = ServerFactory(user=alice, name="quiet", state=State.STARTING)
    seen = add_event(quiet, Kind.START_REQUESTED, 0, "Server requested")
    busy = ServerFactory(user=alice, name="busy", state=State.STARTING)
    add_event(busy, Kind.START_REQUESTED, 0, "Server requested")
    removed = ServerFactory(user=alice, name="removed", state=State.STARTING)
    gone = removed.pk
    removed.delete()
    rows, alive = progress._read_events({quiet.pk: seen.pk, busy.pk: 0, gone: 0})
    assert alive == {quiet.pk, busy.pk}
    assert [(row[1], row[2], row[3], row[4]) for row in rows] == [
        (busy.pk, Kind.START_REQUESTED, 0, "Server requested")
    ]


def test_many_streams_of_one_server_each_get_every_event_once(starting, fast_feed):
    async def crowd() -> list[list[str]]:
        after = await sync_to_async(progress.first_event_id)(starting.pk)
        streams = [
            asyncio.ensure_future(collect(progress.fed_events(starting.pk, "/u/", after)))
            for _ in range(200)
        ]
        await asyncio.sleep(0.05)
        assert len(progress.feed()) == 200
        await sync_to_async(add_event)(starting, Kind.PROGRESS, 70, "almost")
        await sync_to_async(add_event)(starting, Kind.READY, 100, "ready")
        done = await asyncio.wait_for(asyncio.gather(*streams), 10)
        assert len(progress.feed()) == 0  # every watch let go
        return done

    for chunks in asyncio.run(crowd()):
        assert [event["progress"] for event in events_in(chunks)] == [0, 70, 100]


def test_a_failed_database_round_is_retried_and_loses_nothing(starting, fast_feed, monkeypatch):
    real = progress._read_events
    failures = []

    def flaky(wanted):
        if not failures:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return real(wanted)

    monkeypatch.setattr(progress, "_read_events", flaky)
    add_event(starting, Kind.READY, 100, "ready")
    fed = asyncio.run(
        collect(progress.fed_events(starting.pk, "/u/", progress.first_event_id(starting.pk)))
    )
    assert failures == [1]
    assert [event["progress"] for event in events_in(fed)] == [0, 100]


def test_a_watcher_that_leaves_stops_being_fed(starting, fast_feed):
    async def leave() -> int:
        after = await sync_to_async(progress.first_event_id)(starting.pk)
        stream = progress.fed_events(starting.pk, "/u/", after)
        assert await anext(stream) == progress.sse({"progress": 0, "message": "Server requested"})
        assert len(progress.feed()) == 1
        await stream.aclose()  # what Django does when the client disconnects
        return len(progress.feed())

    assert asyncio.run(leave()) == 0


def test_the_asgi_view_streams_from_the_feed_with_the_hubs_checks(
    alice, bob, starting, token_for, fast_feed
):
    add_event(starting, Kind.READY, 100, "ready")
    tokens = {user: token_for(user, None) for user in (alice, bob)}

    async def get(user, path):
        response = await AsyncClient().get(path, headers={"Authorization": f"token {tokens[user]}"})
        if not response.streaming:
            return response, []
        return response, [chunk.decode() async for chunk in response.streaming_content]

    async def both():
        mine = await get(alice, "/hub/api/users/alice/servers/box/progress")
        theirs = await get(bob, "/hub/api/users/alice/servers/box/progress")
        return mine, theirs

    (response, chunks), (refused, _) = asyncio.run(both())
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert events_in(chunks)[-1] == progress.ready_event("/user/alice/box/")
    assert refused.status_code == 403
