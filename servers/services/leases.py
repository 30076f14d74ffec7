"""Spawn leases: which worker runs a start, and proof it is still alive.

A start is owned by one spawn attempt at a time (Server.attempt, a uuid),
claimed by compare-and-set when the spawn task begins. While it runs, a
thread renews the lease (Server.heartbeat) every HUB_SPAWN_LEASE/5 seconds.
Another spawn task for the same start (a redelivered message, a task
enqueued again by reconcile) takes it over only when the owner is gone: its
lease ran out, or its worker process is dead (same host: checked at once),
or it was released (`worker` empty: requeued). The redelivered or requeued
task then finishes the start, after stopping what the dead attempt had
launched. A worker killed mid-spawn therefore delays the start by seconds,
and never leaves two servers."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from hubsite.processes import identity, identity_alive
from servers.models import Server

State = Server.State


def _free() -> Q:
    stale = timezone.now() - timedelta(seconds=settings.HUB_SPAWN_LEASE)
    return Q(attempt="") | Q(worker="") | Q(heartbeat__isnull=True) | Q(heartbeat__lt=stale)


def claim(server: Server, *, fresh: bool = False) -> tuple[str, str] | None:
    """Take SERVER's start for a new attempt: (attempt, previous attempt), or
    None when a live attempt owns it (or it is no longer starting). Waits at
    most one lease for an owner that might be dead on another host. Once
    taken, SERVER holds the row as claimed (what an earlier attempt launched
    included), so the start needs no second read. FRESH: SERVER was just
    read, starting, so the first try compares against it without a read."""
    me = identity()
    deadline = time.monotonic() + settings.HUB_SPAWN_LEASE + 1
    while True:
        row = server if fresh else Server.objects.filter(pk=server.pk, state=State.STARTING).first()
        if row is None:
            return None
        new = uuid.uuid4().hex
        owner_gone = bool(row.worker) and identity_alive(row.worker) is False
        condition = _free() | Q(worker=row.worker) if owner_gone else _free()
        taken = (
            Server.objects.filter(pk=server.pk, state=State.STARTING, attempt=row.attempt)
            .filter(condition)
            .update(attempt=new, worker=me, heartbeat=timezone.now())
        )
        if taken:
            previous = row.attempt  # ROW may be SERVER itself
            server.spawner_state, server.url = row.spawner_state, row.url
            server.attempt, server.worker = new, me
            return new, previous
        if fresh:  # it may have moved since it was read: read it before waiting
            fresh = False
            continue
        if time.monotonic() > deadline:
            return None
        time.sleep(0.25)


def renew(server_id: int, attempt: str) -> bool:
    """Renew ATTEMPT's lease; False once it lost the start (stopped, removed,
    failed or taken over), so its worker stops working on it."""
    return bool(
        Server.objects.filter(pk=server_id, state=State.STARTING, attempt=attempt).update(
            heartbeat=timezone.now()
        )
    )


class Heartbeat:
    """Renews a lease from a thread while the start runs (spawner.start can
    block for long: a first zygote imports for seconds); `lost` tells the
    start it no longer owns the server."""

    def __init__(self, server_id: int, attempt: str) -> None:
        self.server_id = server_id
        self.attempt = attempt
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{server_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        every = settings.HUB_SPAWN_LEASE / 5
        try:
            while not self._done.wait(every):
                try:
                    if not renew(self.server_id, self.attempt):
                        self.lost.set()
                        return
                except Exception:  # a database blip: the next renewal may work
                    continue
        finally:
            connection.close()
