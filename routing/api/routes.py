"""Reads behind the route API: the table the router pulls, as plain dicts.

Version = the id of the newest route change (servers/routefeed.py), so
`since=<version>` reads exactly the changes committed after it, in commit
order: nothing when nothing changed, k rows after k changes. The full table is
read as plain tuples and kept serialized per version: routers asking for the
same version share one build."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from routing.router.table import PathKind, classify, split_prefix
from servers import routefeed
from servers.models import Server


class BadVersion(ValueError):
    pass


def current_version() -> str:
    return str(routefeed.last_id())


def parse_version(version: str) -> int:
    if not version.isdigit() or len(version) > 18:
        raise BadVersion(f"not a route table version: {version!r}")
    return int(version)


def full_table() -> dict[str, dict[str, Any]]:
    rows = Server.objects.routable().values_list("user__username", "name", "url")
    return {
        (f"/user/{user}/{name}/" if name else f"/user/{user}/"): {
            "target": url,
            "user": user,
            "server_name": name,
        }
        for user, name, url in rows
    }


_built: tuple[str, bytes] | None = None
_build_lock = threading.Lock()


def forget_full_body() -> None:
    """Drop the kept build: the database under this process was replaced, so
    a version number may now stand for another table. The tests replace it
    between tests (and their factories write running servers the feed never
    saw); an operator who restores a backup restarts the hubs instead."""
    global _built
    with _build_lock:
        _built = None


def full_body(version: str) -> bytes:
    """The serialized full answer for VERSION (read after VERSION was taken, so
    it may already hold later changes: the next `since` sends them again)."""
    global _built
    with _build_lock:
        if _built is None or _built[0] != version:
            body = {"version": version, "full": True, "routes": full_table()}
            _built = (version, json.dumps(body, separators=(",", ":")).encode())
        return _built[1]


def changes_since(version: str) -> tuple[str, dict[str, dict[str, Any] | None]] | None:
    """(new version, {prefix: route or None}) for the changes after VERSION, the
    last one for each prefix winning; None when the router must read the full
    table (VERSION pruned from the feed, or from another database)."""
    after = routefeed.changes_after(parse_version(version))
    if after is None:
        return None
    last, changes = after
    routes: dict[str, dict[str, Any] | None] = {}
    for change in changes:
        routes[change.prefix] = (
            {"target": change.target, "user": change.user, "server_name": change.server_name}
            if change.target
            else None
        )
    return str(last), routes


def lookup(path: str) -> tuple[str, dict[str, Any]] | None:
    """(prefix, route) of the routable server for PATH, longest prefix first;
    None if there is none. The router asks this at every miss (a server still
    starting, polled every 50 ms by a script): plain SQL, as the ORM spent
    more building this fixed query than the database answering it."""
    where = classify(path)
    if where.kind != PathKind.USER:
        return None
    quote = connection.ops.quote_name
    sql = (  # Server.objects.routable() of one user, without compiling it each time
        f"SELECT s.name, s.url FROM {quote(Server._meta.db_table)} s "
        f"JOIN {quote(User._meta.db_table)} u ON u.id = s.user_id "
        "WHERE u.username = %s AND s.state = %s AND s.url <> ''"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [where.user, Server.State.RUNNING])
        urls = dict(cursor.fetchall())
    name = where.segment if where.segment and where.segment in urls else ""
    if name not in urls:
        return None
    prefix = f"/user/{where.user}/{name}/" if name else f"/user/{where.user}/"
    return prefix, {"target": urls[name], "user": where.user, "server_name": name}


def parse_activity(body: object) -> dict[str, datetime]:
    """{prefix: ISO time} -> {prefix: aware datetime}; ValueError on anything else."""
    if not isinstance(body, Mapping):
        raise ValueError("expected a JSON object {route prefix: ISO 8601 time}")
    now = timezone.now()
    parsed = {}
    for prefix, raw in body.items():
        split_prefix(str(prefix))  # raises ValueError
        when = parse_datetime(raw) if isinstance(raw, str) else None
        if when is None:
            raise ValueError(f"bad time for {prefix}: {raw!r}")
        if timezone.is_naive(when):
            when = timezone.make_aware(when, UTC)
        parsed[str(prefix)] = min(when, now)  # a router clock ahead must not fix the future
    return parsed


def record_activity(activity: Mapping[str, datetime]) -> None:
    """Move servers' and users' last_activity forward; unknown prefixes are ignored
    (the server may have been deleted since the router saw traffic).

    A fixed number of queries whatever the report holds (one read of the
    servers named, one UPDATE of them, one of their users, per chunk of
    ACTIVITY_CHUNK): each router worker reports every few seconds, and a
    report naming 1,000 active servers cost 4,000 queries when each server
    was read and moved on its own."""
    wanted: dict[tuple[str, str], datetime] = {}
    for prefix, when in activity.items():
        wanted[split_prefix(prefix)] = when
    usernames = sorted({user for user, _ in wanted})
    servers: dict[int, datetime] = {}
    users: dict[int, datetime] = {}
    for chunk in _chunks(usernames):
        rows = Server.objects.filter(user__username__in=chunk).values_list(
            "pk", "user_id", "user__username", "name"
        )
        for pk, user_id, username, name in rows:
            when = wanted.get((username, name))
            if when is not None:
                servers[pk] = when
                users[user_id] = max(when, users.get(user_id, when))
    _move_forward(Server, servers)
    _move_forward(User, users)


ACTIVITY_CHUNK = 300  # rows per statement: well inside every backend's parameter limit


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), ACTIVITY_CHUNK):
        yield items[start : start + ACTIVITY_CHUNK]


def _move_forward(model: type[Server] | type[User], stamps: Mapping[int, datetime]) -> None:
    """last_activity = max(last_activity, STAMPS[pk]) for each pk, in one
    UPDATE per chunk (never backwards: a late report of older traffic)."""
    items = sorted(stamps.items())
    for chunk in _chunks(items):
        newer = [
            When(
                Q(pk=pk) & (Q(last_activity__isnull=True) | Q(last_activity__lt=when)),
                then=Value(when, output_field=DateTimeField()),
            )
            for pk, when in chunk
        ]
        model.objects.filter(pk__in=[pk for pk, _ in chunk]).update(
            last_activity=Case(*newer, default=F("last_activity"))
        )


def proxy_table(servers: Iterable[Server]) -> dict[str, dict[str, Any]]:
    """JupyterHub's GET /proxy shape (CHP's table: routespec, target, data)."""
    return {
        s.prefix: {
            "routespec": s.prefix,
            "target": s.url,
            "data": {
                "user": s.user.username,
                "server_name": s.name,
                "last_activity": _iso(s.last_activity),
            },
        }
        for s in servers
    }


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
