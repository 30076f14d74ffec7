"""Activity that servers report (POST /users/{name}/activity)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db.models import Q

from accounts.models import User
from servers.models import Server


class UnknownServer(ValueError):
    pass


def record_activity(
    user: User, *, last_activity: datetime | None, servers: Mapping[str, datetime | None]
) -> None:
    """Move last_activity forward only (JupyterHub's activity semantics)."""
    names = set(servers)
    known = {s.name: s for s in user.servers.filter(name__in=names)}
    missing = names - set(known)
    if missing:
        raise UnknownServer(f"No such server(s) for {user.username}: {', '.join(sorted(missing))}")
    newest = [t for t in [last_activity, *servers.values()] if t is not None]
    for name, when in servers.items():
        if when is not None:
            Server.objects.filter(pk=known[name].pk).filter(
                Q(last_activity__isnull=True) | Q(last_activity__lt=when)
            ).update(last_activity=when)
    if newest:
        user.note_activity(max(newest))
