"""The spawn progress stream (JupyterHub's `.../progress` server-sent events),
in two forms that tell the same story from the same ServerEvent rows:

- `polled_events`, a generator for the hub's gunicorn threads: it holds one
  thread and queries the database every POLL_INTERVAL for as long as the
  client watches. Fine for a handful of watchers; 100 people watching their
  spawns would take every thread the hub has.
- `fed_events`, an async generator for the stream server (`python -m
  hubsite.streams`, Django under uvicorn, where the router sends every progress
  path). Its streams hold no thread: one `ProgressFeed` per process reads the
  new events of every watched server in one query per POLL_INTERVAL, however
  many people watch, and hands each stream its rows.

The router sending progress paths elsewhere changes only which process
answers: both run this project's views with the same authentication and
checks (servers.api.views.ProgressView)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from servers import eventwake
from servers.models import Server, ServerEvent

log = logging.getLogger(__name__)

Kind = ServerEvent.Kind
POLL_INTERVAL = 0.2
TRUSTED_POLL_INTERVAL = 2.0  # the safety poll once wakes have proved to come (eventwake)
KEEPALIVE_EVERY = 8.0
KEEPALIVE = ":\n\n"  # an SSE comment: keeps proxies from closing an idle stream

Row = tuple[int, str, int, str]  # id, kind, progress, message


def sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def ready_event(url: str) -> dict[str, Any]:
    return {
        "progress": 100,
        "ready": True,
        "message": f"Server ready at {url}",
        "html_message": f'Server ready at <a href="{url}">{url}</a>',
        "url": url,
    }


def failed_event(reason: str) -> dict[str, Any]:
    message = f"Spawn failed: {reason}" if reason else "Spawn failed"
    return {"progress": 100, "failed": True, "message": message}


def event_for(kind: str, progress: int, message: str, url: str) -> tuple[dict[str, Any], bool]:
    """What a watcher sees for one ServerEvent row, and whether it ends the
    stream. Only ready, failed and a stop end it: a start that reconcile
    enqueued again (its worker died) goes on, and says so."""
    if kind == Kind.READY:
        return ready_event(url), True
    if kind == Kind.FAILED:
        return failed_event(message), True
    if kind in (Kind.STOP_REQUESTED, Kind.STOPPED):
        return failed_event("the server was stopped while starting"), True
    return {"progress": progress, "message": message}, False


def once(event: dict[str, Any], *, fed: bool) -> Iterator[str] | AsyncIterator[str]:
    """A stream of one event (a server already running or failed), in the
    form the server answering wants (Django under ASGI takes async iterators)."""

    async def one() -> AsyncIterator[str]:
        yield sse(event)

    return one() if fed else iter([sse(event)])


REMOVED = failed_event("the server was removed")
TIMED_OUT = failed_event("timed out waiting for progress")


def first_event_id(server_id: int) -> int:
    """Where a stream starts: at the current start's request, so a watcher
    that arrives late still sees every step of this start and none of the last."""
    start = (
        ServerEvent.objects.filter(server_id=server_id, kind=Kind.START_REQUESTED)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return (start or 1) - 1


def stream_deadline() -> float:
    return time.monotonic() + settings.HUB_START_TIMEOUT + 60


def polled_events(server_id: int, url: str) -> Iterator[str]:
    """The stream on a thread of its own, polling the database."""
    events = ServerEvent.objects.filter(server_id=server_id)
    last_id = first_event_id(server_id)
    deadline = stream_deadline()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        rows = list(
            events.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "kind", "progress", "message")
        )
        for event_id, kind, progress, message in rows:
            last_id = event_id
            event, final = event_for(kind, progress, message, url)
            yield sse(event)
            if final:
                return
        if rows:
            quiet_since = time.monotonic()
        elif not Server.objects.filter(pk=server_id).exists():
            yield sse(REMOVED)
            return
        elif time.monotonic() - quiet_since > KEEPALIVE_EVERY:
            quiet_since = time.monotonic()
            yield KEEPALIVE
        time.sleep(POLL_INTERVAL)
    yield sse(TIMED_OUT)


# --- the shared feed (stream server) -------------------------------------------------


class _Watch:
    """One open stream: the rows it has not been given yet arrive on its queue;
    None on the queue means its server is gone."""

    def __init__(self, server_id: int, after: int) -> None:
        self.server_id = server_id
        self.last_id = after
        self.queue: asyncio.Queue[list[Row] | None] = asyncio.Queue()


class ProgressFeed:
    """Every open stream of this process, fed by one reader.

    The reader runs while anyone watches: each POLL_INTERVAL it asks the
    database once for the new events of all watched servers, and which of
    them still exist, on its one thread (one connection, kept). A round that
    fails is logged and tried again on a fresh connection: the streams wait,
    as their watchers would for a slow spawn, until their deadline."""

    def __init__(
        self, *, interval: float = POLL_INTERVAL, trusted_interval: float = TRUSTED_POLL_INTERVAL
    ) -> None:
        self.interval = interval
        self.trusted_interval = trusted_interval
        self._watches: dict[int, set[_Watch]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress-feed")
        self._woken = asyncio.Event()
        self._opened = False  # a stream opened since the last round: read now
        self._live = 0  # wake channels listening now (servers/eventwake.py)
        self.trusted = False  # whether new events come with a wake: then poll slowly
        self.rounds = 0  # database rounds so far (what the benchmark and tests count)

    def __len__(self) -> int:
        return sum(len(watches) for watches in self._watches.values())

    def watch(self, server_id: int, after: int) -> _Watch:
        watch = _Watch(server_id, after)
        self._watches.setdefault(server_id, set()).add(watch)
        self._opened = True
        self._woken.set()
        loop = asyncio.get_running_loop()
        if self._listener is None or self._listener.done():
            self._listener = loop.create_task(eventwake.listen(self.wake, self._note_live))
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read())
        return watch

    def wake(self) -> None:
        """Events were written: read now rather than at the next poll."""
        self._woken.set()

    def _note_live(self, live: bool) -> None:
        self._live += 1 if live else -1
        if self._live <= 0:
            self._live, self.trusted = 0, False

    def unwatch(self, watch: _Watch) -> None:
        watches = self._watches.get(watch.server_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.server_id]

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        woken = False
        while self._watches:
            self._woken.clear()  # a wake from here on means another round
            opened, self._opened = self._opened, False
            wanted = {sid: min(w.last_id for w in ws) for sid, ws in self._watches.items()}
            try:
                rows, alive = await loop.run_in_executor(self._thread, _read_events, wanted)
            except Exception as exc:  # the reader must outlive a bad round: streams wait on it
                log.warning("progress feed: reading events failed (%s); trying again", exc)
                await loop.run_in_executor(self._thread, _drop_connection)
                rows, alive = [], set(wanted)
            self.rounds += 1
            if rows and not opened:  # a new stream's first rows prove nothing
                # trusted once a wake has brought new events; no longer once a
                # poll has found some that no wake announced
                self.trusted = woken and self._live > 0
            self._hand_out(rows, alive)
            pause = self.trusted_interval if self.trusted and self._live else self.interval
            try:
                await asyncio.wait_for(self._woken.wait(), pause)
                woken = True
            except TimeoutError:
                woken = False

    def _hand_out(self, rows: list[tuple[int, int, str, int, str]], alive: set[int]) -> None:
        by_server: dict[int, list[Row]] = {}
        for event_id, server_id, kind, progress, message in rows:
            by_server.setdefault(server_id, []).append((event_id, kind, progress, message))
        for server_id, watches in list(self._watches.items()):
            mine = by_server.get(server_id)
            for watch in watches:
                if mine:
                    fresh = [row for row in mine if row[0] > watch.last_id]
                    if fresh:
                        watch.last_id = fresh[-1][0]
                        watch.queue.put_nowait(fresh)
                elif server_id not in alive:
                    watch.queue.put_nowait(None)


def _read_events(wanted: dict[int, int]) -> tuple[list[tuple[int, int, str, int, str]], set[int]]:
    """The feed's one round trip: events after each server's oldest unseen id
    (a stream that is ahead skips what it has seen), and which servers exist.
    Plain SQL, one query: the feed asks five times a second for as long as
    anyone watches, and building the two ORM querysets it replaced cost the
    stream server more than the database did (~2 ms a round against ~0.3)."""
    floor = min(wanted.values())
    ids = list(wanted)
    with connection.cursor() as cursor:
        cursor.execute(_events_sql(len(ids)), [floor, *ids])
        found = cursor.fetchall()
    alive = {row[0] for row in found}
    rows = [
        (event_id, server_id, kind, progress, message)
        for server_id, event_id, kind, progress, message in found
        if event_id is not None and event_id > wanted[server_id]
    ]
    rows.sort()
    return rows, alive


def _events_sql(count: int) -> str:
    return f"{_events_select(connection.vendor)} ({', '.join(['%s'] * count)})"


@functools.cache
def _events_select(vendor: str) -> str:
    """Every watched server that still exists, once per new event (or once
    with NULLs: a LEFT JOIN, so that a server with nothing new is still seen
    alive); built once per database kind, not five times a second."""
    q = connection.ops.quote_name
    server, event = Server._meta, ServerEvent._meta
    column = {name: q(event.get_field(name).column) for name in ("id", "kind", "progress")}
    return (
        f"SELECT s.{q(server.pk.column)}, e.{column['id']}, e.{column['kind']},"
        f" e.{column['progress']}, e.{q(event.get_field('message').column)}"
        f" FROM {q(server.db_table)} s LEFT JOIN {q(event.db_table)} e"
        f" ON e.{q(event.get_field('server').column)} = s.{q(server.pk.column)}"
        f" AND e.{column['id']} > %s"
        f" WHERE s.{q(server.pk.column)} IN"
    )


def _drop_connection() -> None:
    """After a failed round: the next one connects afresh (the database may
    have restarted). The feed's thread keeps its connection otherwise, whatever
    CONN_MAX_AGE says: it is one connection, busy five times a second."""
    with contextlib.suppress(DatabaseError):
        connection.close()


_feeds: dict[asyncio.AbstractEventLoop, ProgressFeed] = {}


def feed() -> ProgressFeed:
    """This event loop's feed (uvicorn runs one loop per process)."""
    loop = asyncio.get_running_loop()
    found = _feeds.get(loop)
    if found is None:
        found = _feeds[loop] = ProgressFeed()
    return found


async def fed_events(server_id: int, url: str, after: int) -> AsyncIterator[str]:
    """The stream on the shared feed, from event id AFTER on."""
    progress = feed()
    watch = progress.watch(server_id, after)
    deadline = stream_deadline()
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                rows = await asyncio.wait_for(watch.queue.get(), min(left, KEEPALIVE_EVERY))
            except TimeoutError:
                if time.monotonic() < deadline:
                    yield KEEPALIVE
                continue
            if rows is None:
                yield sse(REMOVED)
                return
            for _, kind, step, message in rows:
                event, final = event_for(kind, step, message, url)
                yield sse(event)
                if final:
                    return
        yield sse(TIMED_OUT)
    finally:
        progress.unwatch(watch)
