"""The hub's "routes changed" signal through a file, for routers on the hub's
own machine (`make run`): what the Redis channel (wakeup.py) does, without Redis.

After each commit that changes routes the hub writes the newest change id to
HUB_ROUTE_WAKE_FILE (servers/routefeed.py), whole, by rename. A router worker
watches the file's directory with inotify and pulls as soon as the file is
replaced: a change reaches its table in milliseconds, and an idle hub answers
one slow safety poll per worker every `woken_interval` instead of one a second.

The worker only relies on the file (and so polls slowly, and looks up no
path its table misses) once it has seen the file replaced, and while the file
keeps up with the feed: after each pull the file must name the very version
the route API answered (RouteSync.note_wake_file; a newer one is a change
still on its way, and its own wake follows). A hub on another machine,
or one that writes elsewhere, leaves the file behind, and the worker goes on
polling every second as before. Either way the routes themselves only ever
come from the route API."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from routing.router.inotify import FolderWatch

if TYPE_CHECKING:
    from routing.router.client import RouteSync

log = logging.getLogger("routing.router")


PENDING = "pending"  # a change is being committed: its number follows


def read_wake(path: Path) -> str | None:
    """What PATH says: a change id, PENDING, or None (no file, or garbled)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text if text.isdigit() or text == PENDING else None


def read_version(path: Path) -> str | None:
    """The change id in PATH, or None when there is none to read."""
    text = read_wake(path)
    return None if text == PENDING else text


def announce(path: Path, last: int) -> None:
    """The hub's half: PATH names change LAST. Replaced by rename, so a reader
    sees the old number or the new one, never half of one. The last writer
    wins, even with an older number (two hub processes committing at once, or
    a file left by an earlier database whose feed was further on): a worker
    relies on the file only while it names exactly what the API answered."""
    _replace(path, str(last))


def announce_pending(path: Path) -> None:
    """Before the commit of a route change: until the number follows, a worker
    whose table misses a path asks the hub (RouteSync.announced_all), as the
    change may be visible to a client before it is announced."""
    _replace(path, PENDING)


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(text)
    os.replace(partial, path)


async def watch_forever(path: Path, sync: RouteSync) -> None:
    """Wake SYNC whenever PATH is replaced. Runs until cancelled; without
    inotify (not Linux, or out of watches) it logs why and returns, and the
    worker polls as if there were no file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        watch = FolderWatch(path.parent)
    except OSError as exc:
        log.info("not watching %s: %s", path, exc)
        return
    with watch:
        replaced = asyncio.Event()
        name = os.fsencode(path.name)
        loop = asyncio.get_running_loop()

        def on_event() -> None:
            if name in watch.names():
                replaced.set()

        loop.add_reader(watch.fd, on_event)
        sync.watching = True
        sync.wake()  # whatever changed before the watch began
        try:
            while True:
                await replaced.wait()
                replaced.clear()
                sync.file_replaced = True
                version = read_version(path)
                if version is not None:  # PENDING: its number comes with its own event
                    sync.wake(version)
        finally:
            sync.watching = False
            loop.remove_reader(watch.fd)
