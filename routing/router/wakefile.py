"""The hub's "routes changed" signal through a file, for routers on the hub's
own machine (`make run`): what the Redis channel (wakeup.py) does, without Redis.

After each commit that changes routes the hub writes the newest change id to
HUB_ROUTE_WAKE_FILE (servers/routefeed.py), whole, by rename. A router worker
watches the file's directory with inotify and pulls as soon as the file is
replaced: a change reaches its table in milliseconds, and an idle hub answers
one slow safety poll per worker every `woken_interval` instead of one a second.

The worker only relies on the file (and so polls slowly, and looks up no
GET or HEAD its table misses: RouteSync.resolve) once it has seen the file
replaced, and while the file keeps up with the feed: after each pull the
file must name the very version the route API answered
(RouteSync.note_wake_file; a newer one is a change still on its way, and its
own wake follows). A hub on another machine, or one that writes elsewhere,
leaves the file behind, and the worker goes on polling every second as before.
Either way the routes themselves only ever come from the route API.

Several hub processes and threads write the file. Change N is marked
"pending N" inside its transaction, once it holds the feed's row lock (so
N - 1 has committed), and named "N" after its commit only if no later change
has been marked since: a late "N" must never replace "pending N+1", or a
worker at N would believe it has everything while N+1 is committed. Those
writes take a lock file next to the wake file, so a check and its write are
one step; numbers are never compared, as a new database counts from 1
again."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from routing.router.inotify import FolderWatch

if TYPE_CHECKING:
    from routing.router.client import RouteSync

log = logging.getLogger("routing.router")


PENDING = "pending"  # "pending N": change N is being committed, N - 1 has been


def read_wake(path: Path) -> str | None:
    """What PATH says: a change id, "pending <id>", or None (no file, or garbled)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text if text.isdigit() or pending_change(text) is not None else None


def pending_change(text: str | None) -> int | None:
    """N when TEXT is "pending N", else None."""
    word, _, number = (text or "").partition(" ")
    return int(number) if word == PENDING and number.isdigit() else None


def read_version(path: Path) -> str | None:
    """The change id PATH names as announced; None while one is pending."""
    text = read_wake(path)
    return None if pending_change(text) is not None else text


def committed(text: str | None) -> str | None:
    """The newest change id TEXT shows committed: N for "N", and N - 1 for
    "pending N" (its writer took the feed's lock after N - 1 committed)."""
    pending = pending_change(text)
    if pending is not None:
        return str(pending - 1) if pending > 1 else None
    return text


def announce_pending(path: Path, first: int) -> None:
    """Before the commit of changes FIRST.. (their transaction holds the
    feed's row lock): until their number follows, a worker whose table misses
    a path asks the hub (RouteSync.announced_all), as a change may be visible
    to a client before it is announced."""
    with _writers(path):
        _replace(path, f"{PENDING} {first}")


def announce(path: Path, last: int, *, first: int | None = None) -> None:
    """After the commit of changes FIRST..LAST (marked "pending FIRST"): PATH
    names LAST, unless a later change has been marked pending since (that
    one names itself when it commits). Replaced by rename, so a reader sees
    the old text or the new, never half of it."""
    with _writers(path):
        if read_wake(path) == f"{PENDING} {last if first is None else first}":
            _replace(path, str(last))


@contextmanager
def _writers(path: Path) -> Iterator[None]:
    """One writer at a time (threads and processes alike: an flock on an open
    file of its own). Opened read-only, so the lock makes no inotify event a
    worker would have to look at."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replace(path: Path, text: str) -> None:
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
                version = committed(read_wake(path))
                if version is not None:  # "pending N": N - 1 is in, N follows
                    sync.wake(version)
        finally:
            sync.watching = False
            loop.remove_reader(watch.fd)
