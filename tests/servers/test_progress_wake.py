"""The progress feed woken by the writers of server events (servers/eventwake.py)
instead of finding them by polling: through the wake file on one machine, or
Redis when there is one. Each test polls so rarely (once a minute) that only a
wake can bring its events within the test's time; and a feed whose wakes never
come (its writers on another machine, no Redis) keeps polling quickly."""

from __future__ import annotations

import asyncio
import os

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from servers import eventwake
from servers.api import progress
from servers.models import Server, ServerEvent
from tests.factories import ServerFactory

Kind = ServerEvent.Kind
pytestmark = pytest.mark.django_db(transaction=True)

RARELY = 60.0  # seconds between the feed's polls: longer than any wait below


@pytest.fixture
def starting(alice) -> Server:
    server = ServerFactory(user=alice, state=Server.State.STARTING)
    ServerEvent.objects.create(server=server, kind=Kind.START_REQUESTED, message="requested")
    return server


@pytest.fixture
def wake_file(settings, tmp_path):
    settings.HUB_REDIS_URL = ""
    settings.HUB_EVENT_WAKE_FILE = str(tmp_path / "events" / "written")
    return settings.HUB_EVENT_WAKE_FILE


def add_event(server: Server, step: int, kind: str = Kind.PROGRESS) -> None:
    ServerEvent.objects.create(server=server, kind=kind, progress=step, message=f"step {step}")


async def follow(
    feed: progress.ProgressFeed, server: Server, steps: list[int]
) -> tuple[list[int], bool]:
    """Watch SERVER on FEED while STEPS are written one by one, each once the
    previous one has arrived; the progress values seen after the start
    request, in order, and whether the feed then trusted its wakes."""
    after = await sync_to_async(progress.first_event_id)(server.pk)
    watch = feed.watch(server.pk, after)
    seen: list[int] = []
    try:
        backlog = await asyncio.wait_for(watch.queue.get(), 20)  # read as the stream opened
        assert [row[1] for row in backlog] == [Kind.START_REQUESTED]
        while not feed._live:
            await asyncio.sleep(0.01)
        for step in steps:
            await sync_to_async(add_event)(server, step)
            rows = await asyncio.wait_for(watch.queue.get(), 20)
            seen += [row[2] for row in rows]
        return seen, feed.trusted
    finally:
        feed.unwatch(watch)


def test_a_written_event_reaches_the_feed_at_once_through_the_wake_file(starting, wake_file):
    feed = progress.ProgressFeed(interval=RARELY, trusted_interval=RARELY)
    assert asyncio.run(follow(feed, starting, [10, 40, 70])) == ([10, 40, 70], True)
    assert os.path.exists(wake_file)


def test_a_written_event_reaches_the_feed_at_once_through_redis(starting, settings):
    redis_url = os.environ.get("HUB_REDIS_URL")
    if not redis_url:
        pytest.skip("the Redis wake needs Redis (HUB_REDIS_URL); CI sets it")
    settings.HUB_REDIS_URL = redis_url
    settings.HUB_EVENT_WAKE_FILE = ""
    feed = progress.ProgressFeed(interval=RARELY, trusted_interval=RARELY)
    assert asyncio.run(follow(feed, starting, [10, 40])) == ([10, 40], True)


def test_a_feed_whose_wakes_never_come_keeps_polling_quickly(starting, wake_file, monkeypatch):
    """The writers are elsewhere (another machine, no Redis): the file is
    watched but never touched, so the events come by the fast polls, and the
    feed never slows down to the trusted interval."""
    monkeypatch.setattr(eventwake, "wake", lambda: None)
    feed = progress.ProgressFeed(interval=0.05, trusted_interval=RARELY)
    assert asyncio.run(follow(feed, starting, [10, 40])) == ([10, 40], False)


def test_events_written_in_one_transaction_wake_the_feeds_once(starting):
    with transaction.atomic():
        for step in (10, 20, 30):
            add_event(starting, step)
        wakes = [hook for hook in connection.run_on_commit if hook[1] is eventwake.wake]
    assert len(wakes) == 1


def test_a_wake_rolled_back_with_a_savepoint_leaves_the_next_event_its_own(starting):
    with transaction.atomic():
        try:
            with transaction.atomic():
                add_event(starting, 10)
                raise RuntimeError("this part is undone")
        except RuntimeError:
            pass
        add_event(starting, 20)
        wakes = [hook for hook in connection.run_on_commit if hook[1] is eventwake.wake]
    assert len(wakes) == 1


def test_an_unwritable_wake_file_does_not_fail_the_write(starting, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.HUB_REDIS_URL = ""
    settings.HUB_EVENT_WAKE_FILE = str(blocker / "written")
    add_event(starting, 10)
    assert starting.events.filter(progress=10).exists()
