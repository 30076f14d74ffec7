"""JupyterHub's Server model, built as plain dicts.

Hand-built rather than DRF serializers: the user list renders up to 200 users
with their servers per request, and nested serializers cost several times
more CPU than a dict per row (see bench/api.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings

from servers import hosts
from servers.models import Server

State = Server.State
# the columns server_model reads; list queries fetch exactly these with .values()
SERVER_FIELDS = (
    "user_id",
    "name",
    "display_name",
    "state",
    "started",
    "last_activity",
    "user_options",
    "spawner_state",
)
_PENDING = {State.STARTING: "spawn", State.STOPPING: "stop"}
_ACTIVE = (State.STARTING, State.RUNNING, State.STOPPING)


def isoformat(value: datetime | None) -> str | None:
    """JupyterHub's timestamp format: naive UTC ISO 8601 plus 'Z'."""
    if value is None:
        return None
    if value.tzinfo is None:  # raw SQLite values: naive UTC
        return value.isoformat() + "Z"
    text = value.isoformat()
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def server_url(username: str, server_name: str) -> str:
    base = f"/user/{quote(username, safe='')}/"
    return f"{base}{quote(server_name, safe='')}/" if server_name else base


def progress_url(username: str, server_name: str) -> str:
    user = quote(username, safe="")
    if server_name:
        return f"/hub/api/users/{user}/servers/{quote(server_name, safe='')}/progress"
    return f"/hub/api/users/{user}/server/progress"


def is_active(state: str) -> bool:
    return state in _ACTIVE


def server_row(server: Server) -> dict[str, Any]:
    """A Server instance as the mapping server_model reads."""
    return {field: getattr(server, field) for field in SERVER_FIELDS}


def server_model(username: str, row: Mapping[str, Any], *, with_state: bool) -> dict[str, Any]:
    """The Server model of the OpenAPI spec; `state` only with admin:server_state.
    With subdomains `url` is absolute on the user's host, as in JupyterHub."""
    name = row["name"]
    state = row["state"]
    path = server_url(username, name)
    progress = progress_url(username, name)
    public = settings.HUB_PUBLIC_URL
    model = {
        "name": name,
        "full_name": f"{username}/{name}",
        "display_name": row["display_name"] or name,
        "last_activity": isoformat(row["last_activity"]),
        "started": isoformat(row["started"]),
        "pending": _PENDING.get(state),
        "ready": state == State.RUNNING,
        "stopped": state not in _ACTIVE,
        "url": hosts.browser_url(username, path),
        "user_options": row["user_options"] or {},
        "progress_url": progress,
        "full_url": hosts.absolute_url(username, path) or None,
        # the progress stream is the hub's API: always on the hub's host
        "full_progress_url": public + progress if public else None,
    }
    if with_state:
        model["state"] = row["spawner_state"] or {}
    return model
