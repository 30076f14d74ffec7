"""The route change feed: what routers read instead of the whole table.

Every transaction that moves a server's route (servers.models.ServerQuerySet
.update, Server.save, a delete) appends the routes as they now are, numbered
from RouteFeed under its row lock. Ids are therefore in commit order and
without gaps, and "changes after N" is one index range read: a quiet poll costs
the same at 10 or 10,000 routes, a poll after k changes O(k), and no time
window is re-read. After commit, HUB_REDIS_URL (when set) carries the new id to
the routers' wake channel, so they pull within milliseconds instead of polling
every second. Old rows are pruned; a reader behind the pruned ones is told to
read the full table."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from routing.router import wakefile, wakeup
from servers.models import RouteChange, RouteFeed, Server

log = logging.getLogger(__name__)

KEEP = 100_000  # changes kept for routers that fell behind; older ones read the full table
PRUNE_EVERY = 1_000


@dataclass(frozen=True)
class Change:
    prefix: str
    target: str = ""  # "" = no route
    user: str = ""
    server_name: str = ""


def record(server_ids: Iterable[int], *, routed_before: Collection[int] | None = None) -> None:
    """Append the current route (or its absence) of each server. With
    ROUTED_BEFORE (the ids that had a route before this transaction), servers
    that had none and still have none are left out: a start request or a
    failed start moves no route."""
    rows = list(
        Server.objects.filter(pk__in=list(server_ids))
        .order_by("pk")
        .values_list("pk", "user__username", "name", "state", "url")
    )
    changes = [_change(user, name, state, url) for pk, user, name, state, url in rows]
    if routed_before is not None:
        changes = [
            c for c, row in zip(changes, rows, strict=True) if c.target or row[0] in routed_before
        ]
    append(changes)


def record_removed(server: Server) -> None:
    """SERVER's row is going: its route goes with it."""
    append([Change(server.prefix)])


def _change(user: str, name: str, state: str, url: str) -> Change:
    prefix = f"/user/{user}/{name}/" if name else f"/user/{user}/"
    if state == Server.State.RUNNING and url:
        return Change(prefix, url, user, name)
    return Change(prefix)


def append(changes: list[Change]) -> None:
    if not changes:
        return
    with transaction.atomic(savepoint=False):  # inside the caller's transaction, if any
        last = _advance(len(changes))
        first = last - len(changes) + 1
        _mark_pending(first)
        RouteChange.objects.bulk_create(
            RouteChange(id=first + i, **vars(change)) for i, change in enumerate(changes)
        )
        if last // PRUNE_EVERY != (first - 1) // PRUNE_EVERY:
            RouteChange.objects.filter(id__lte=last - KEEP).delete()
    transaction.on_commit(lambda: wake_routers(last, first))


def _advance(count: int) -> int:
    """Take COUNT ids; the row stays locked until this transaction ends."""
    if connection.vendor not in ("postgresql", "sqlite"):  # no UPDATE ... RETURNING
        feed, _ = RouteFeed.objects.select_for_update().get_or_create(pk=1)
        RouteFeed.objects.filter(pk=1).update(last=feed.last + count)
        return feed.last + count
    table = connection.ops.quote_name(RouteFeed._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET last = last + %s WHERE id = 1 RETURNING last", [count])
        row = cursor.fetchone()
    if row is None:  # a database made without the migration's row
        RouteFeed.objects.get_or_create(pk=1)
        return _advance(count)
    return int(row[0])


def last_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection.vendor)[0])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def changes_after(since: int) -> tuple[int, list[Change]] | None:
    """(newest id, changes after SINCE in commit order), or None when SINCE cannot
    be continued from: pruned, or from a feed this database never had. Plain
    SQL: every router worker asks after every change, and the ORM spent more
    building these two fixed queries than the database answering them."""
    last = last_id()
    if since == last:
        return last, []
    if since > last:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection.vendor)[1], [since])
        rows = cursor.fetchall()
    if not rows or rows[0][0] != since + 1:
        return None
    return rows[-1][0], [Change(*row[1:]) for row in rows]


@cache
def _sql(vendor: str) -> tuple[str, str]:
    """(newest id, changes after %s) for VENDOR's quoting: RouteFeed and
    RouteChange read by hand."""
    quote = connection.ops.quote_name
    feed = RouteFeed._meta
    change = RouteChange._meta
    columns = ", ".join(
        quote(change.get_field(name).column)
        for name in ("id", "prefix", "target", "user", "server_name")
    )
    return (
        f"SELECT {quote(feed.get_field('last').column)} FROM {quote(feed.db_table)} "
        f"WHERE {quote(feed.pk.column)} = 1",
        f"SELECT {columns} FROM {quote(change.db_table)} "
        f"WHERE {quote(change.pk.column)} > %s ORDER BY {quote(change.pk.column)}",
    )


# --- waking the routers -----------------------------------------------------------------


@cache
def wake_publisher() -> Any:  # redis.Redis, imported lazily
    """The one client this process publishes wakes with (the routers' here, the
    progress feeds' in servers/eventwake.py): short timeouts, as a wake is best
    effort and runs after a commit."""
    import redis

    return redis.Redis.from_url(
        wakeup.connection_url(settings.HUB_REDIS_URL),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )


def _mark_pending(first: int) -> None:
    """Say in the wake file, before the commit, that changes from FIRST come: a
    client may see it (a server now running) before wake_routers runs, and
    routers ask the hub about misses until the number is there. Called with
    the feed's row lock held, which orders these marks as the commits."""
    if settings.HUB_ROUTE_WAKE_FILE:
        try:
            wakefile.announce_pending(Path(settings.HUB_ROUTE_WAKE_FILE), first)
        except OSError as exc:
            log.info("could not write the wake file: %s", exc)


def wake_routers(last: int, first: int | None = None) -> None:
    """Tell routers there are changes FIRST..LAST, through the wake file
    (routers on this machine) and Redis when there is one. Best effort: a
    router that misses it pulls on its next poll."""
    if settings.HUB_ROUTE_WAKE_FILE:
        try:
            wakefile.announce(Path(settings.HUB_ROUTE_WAKE_FILE), last, first=first)
        except OSError as exc:
            log.info("could not write the wake file: %s", exc)
    if not settings.HUB_REDIS_URL:
        return
    try:
        wake_publisher().publish(wakeup.channel(settings.HUB_REDIS_URL), str(last))
    except Exception as exc:  # redis raises several unrelated types
        log.info("could not wake the routers: %s", exc)


def _on_delete(sender: type[Server], instance: Server, **kwargs: object) -> None:
    """Also for cascades (a user deleted): Django sends this inside the delete's
    transaction, while the user row still exists."""
    if instance.state == Server.State.RUNNING:
        record_removed(instance)


def connect() -> None:
    from django.db.models.signals import pre_delete

    pre_delete.connect(_on_delete, sender=Server, dispatch_uid="routefeed-delete")
