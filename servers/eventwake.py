"""The "a server event was written" signal, which wakes the stream servers'
progress feeds (servers/api/progress.py) the moment a spawn moves on.

Without it a feed finds new events by polling every 0.2 s, so the event a
person waits for most, "ready", reached their spawn page ~100 ms after the
server was up (half the poll, on a local start of ~300 ms), and every open
stream cost the feed five database rounds a second. With it the feed reads
at once when woken and polls only as a safety net, slowly once the wakes
have proved to arrive (ProgressFeed).

Two channels, as for the routers' route wake (servers/routefeed.py): a file
touched after every commit that wrote an event (HUB_EVENT_WAKE_FILE, default
HUB_DATA_DIR/run/events/written; stream servers on this machine watch its
folder with inotify), and a Redis message when HUB_REDIS_URL is set (stream
servers anywhere). Both are best effort: a wake that is lost only delays the
events to the feed's next poll. The events themselves only ever come from
the database."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save

from routing.router import wakeup
from routing.router.inotify import FolderWatch
from servers import routefeed

log = logging.getLogger(__name__)

RETRY = 2.0  # seconds before a lost Redis subscription is tried again


def channel() -> str:
    """Named after HUB_REDIS_URL's database, like the routers' channel, so two
    hubs sharing one Redis do not wake each other's feeds."""
    return wakeup.channel(settings.HUB_REDIS_URL).replace("hub:routes:", "hub:events:")


def connect() -> None:
    from servers.models import ServerEvent

    post_save.connect(_on_event, sender=ServerEvent, dispatch_uid="servers.eventwake")


def _on_event(sender: type, instance: Any, created: bool, **kwargs: object) -> None:
    if not created:
        return
    connection = transaction.get_connection()
    here = set(connection.savepoint_ids)
    # once per commit however many events it writes: a wake already queued
    # outside every savepoint open now cannot be rolled back without this one
    if not any(func is wake and sids <= here for sids, func, _ in connection.run_on_commit):
        transaction.on_commit(wake)


def wake() -> None:
    """Tell every stream server that events were written. Never raises: the
    write it follows has committed, and its readers poll anyway."""
    if settings.HUB_EVENT_WAKE_FILE:
        try:
            touch(Path(settings.HUB_EVENT_WAKE_FILE))
        except OSError as exc:
            log.info("could not touch the event wake file: %s", exc)
    if settings.HUB_REDIS_URL:
        try:
            routefeed.wake_publisher().publish(channel(), "1")
        except Exception as exc:  # redis raises several unrelated types
            log.info("could not wake the progress feeds: %s", exc)


def touch(path: Path) -> None:
    """Open for writing and close: one inotify IN_CLOSE_WRITE for the
    watchers, and no content anyone has to read (~20 us; a rename, as the
    route wake file needs for its content, costs ten times that)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.close(fd)


async def listen(on_wake: Callable[[], None], on_live: Callable[[bool], None]) -> None:
    """Call ON_WAKE whenever events were written, until cancelled. ON_LIVE(True)
    once a channel is listening, ON_LIVE(False) when none is any more (the feed
    then polls quickly again)."""
    tasks = []
    if settings.HUB_EVENT_WAKE_FILE:
        tasks.append(_watch_file(Path(settings.HUB_EVENT_WAKE_FILE), on_wake, on_live))
    if settings.HUB_REDIS_URL:
        tasks.append(_subscribe(on_wake, on_live))
    if tasks:
        await asyncio.gather(*tasks)


async def _watch_file(
    path: Path, on_wake: Callable[[], None], on_live: Callable[[bool], None]
) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        watch = FolderWatch(path.parent)
    except OSError as exc:
        log.info("progress feed: not watching %s: %s", path, exc)
        return
    name = os.fsencode(path.name)
    loop = asyncio.get_running_loop()

    def on_readable() -> None:
        if name in watch.names():
            on_wake()

    with watch:
        loop.add_reader(watch.fd, on_readable)
        on_live(True)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            on_live(False)
            loop.remove_reader(watch.fd)


async def _subscribe(on_wake: Callable[[], None], on_live: Callable[[bool], None]) -> None:
    import redis.asyncio as redis

    task = asyncio.current_task()
    while True:
        client = redis.Redis.from_url(
            wakeup.connection_url(settings.HUB_REDIS_URL), socket_connect_timeout=2
        )
        live = False
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel())
                on_live(live := True)
                on_wake()  # whatever was written while not listening
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if task is not None and task.cancelling():
                        # redis-py can swallow a cancel that lands mid-read
                        # (seen with 8.1): honour it here, within a second
                        raise asyncio.CancelledError
                    if message is not None:
                        on_wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis raises several unrelated types
            if live:
                log.warning("progress feed: wake channel lost, polling: %s", exc)
        finally:
            if live:
                on_live(False)
            await client.aclose()
        await asyncio.sleep(RETRY)
