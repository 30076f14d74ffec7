"""Reads behind the route API: the table the router pulls, as plain dicts.

Version = "<newest Server.changed in µs>-<routable count>". Every state
change bumps `changed`, so the version moves whenever a route can have moved;
the count catches a running row being deleted. Incremental reads go back
OVERLAP before the version's time, so an update whose transaction committed
late (older `changed`, visible after a newer one) is still sent."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.api import inputs
from accounts.models import User
from routing.router.table import PathKind, classify, split_prefix
from servers.models import Server

OVERLAP = timedelta(seconds=5)


class BadVersion(ValueError):
    pass


def current_version() -> str:
    newest = Server.objects.aggregate(newest=Max("changed"))["newest"]
    micros = int(newest.timestamp() * 1_000_000) if newest else 0
    return f"{micros}-{Server.objects.routable().count()}"


def _version_time(version: str) -> datetime:
    micros = inputs.route_version_micros(version)
    if micros is None:
        raise BadVersion(f"not a route table version (<microseconds>-<count>): {version!r}")
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def route_of(server: Server) -> dict[str, Any]:
    return {"target": server.url, "user": server.user.username, "server_name": server.name}


def full_table() -> dict[str, dict[str, Any]]:
    servers = Server.objects.routable().select_related("user")
    return {s.prefix: route_of(s) for s in servers}


def changes_since(version: str) -> dict[str, dict[str, Any] | None]:
    """Every server changed in the window: its route, or None when it has none now."""
    since = _version_time(version) - OVERLAP
    servers = Server.objects.filter(changed__gte=since).select_related("user")
    return {s.prefix: route_of(s) if s.is_ready and s.url else None for s in servers}


def lookup(path: str) -> Server | None:
    """The routable server for PATH, longest prefix first; None if there is none."""
    where = classify(path)
    if where.kind != PathKind.USER:
        return None
    servers = {
        s.name: s
        for s in Server.objects.routable().filter(user__username=where.user).select_related("user")
    }
    if where.segment and where.segment in servers:
        return servers[where.segment]
    return servers.get("")


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
    (the server may have been deleted since the router saw traffic)."""
    by_user: dict[str, dict[str, datetime]] = defaultdict(dict)
    for prefix, when in activity.items():
        user, server = split_prefix(prefix)
        by_user[user][server] = when
    users = User.objects.filter(username__in=list(by_user))
    for user in users:
        wanted = by_user[user.username]
        known = set(user.servers.filter(name__in=list(wanted)).values_list("name", flat=True))
        for name in known:
            _move_forward(Server.objects.filter(user=user, name=name), wanted[name])
        if known:
            user.note_activity(max(wanted[n] for n in known))


def _move_forward(servers: QuerySet[Server], when: datetime) -> None:
    servers.filter(Q(last_activity__isnull=True) | Q(last_activity__lt=when)).update(
        last_activity=when
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
