"""JupyterHub's User, Group and Token models, built as plain dicts and
filtered field by field by what the caller's scopes allow on each user
(JupyterHub's `user_model` access map)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from accounts.api.access import Access
from accounts.identity import token_scopes
from accounts.models import ApiToken, Group, User
from servers import hosts
from servers.api.serializers import (
    SERVER_FIELDS,
    is_active,
    isoformat,
    server_model,
    server_url,
)
from servers.models import Server

# the columns user_model reads; list queries fetch exactly these with .values()
USER_FIELDS = ("id", "username", "is_superuser", "created", "last_activity")

# scope -> the user-model keys it reveals (JupyterHub apihandlers/base.py)
USER_ACCESS: dict[str, frozenset[str]] = {
    "read:users": frozenset(
        {
            "kind",
            "name",
            "admin",
            "roles",
            "groups",
            "server",
            "pending",
            "created",
            "last_activity",
        }
    ),
    "read:users:name": frozenset({"kind", "name", "admin"}),
    "read:users:groups": frozenset({"kind", "name", "groups"}),
    "read:users:activity": frozenset({"kind", "name", "last_activity"}),
    "read:servers": frozenset({"kind", "name", "servers"}),
    "read:roles:users": frozenset({"kind", "name", "roles", "admin"}),
}
READ_USER_SCOPES = tuple(USER_ACCESS)


class UserModels:
    """Builds user models for one request; caches the caller's per-scope answers."""

    def __init__(self, access: Access, *, include_stopped: bool = False) -> None:
        self.access = access
        self.include_stopped = include_stopped
        self._all_keys: frozenset[str] | None = None
        if all(access.is_unfiltered(s) for s in USER_ACCESS):
            self._all_keys = frozenset().union(*USER_ACCESS.values())
        self._all_servers = access.is_unfiltered("read:servers")
        self._server_state = access.is_unfiltered("admin:server_state")

    def keys_for(self, name: str, groups: Sequence[str]) -> frozenset[str]:
        if self._all_keys is not None:
            return self._all_keys
        keys: set[str] = set()
        for scope, fields in USER_ACCESS.items():
            if self.access.on_user(scope, name, groups):
                keys |= fields
        return frozenset(keys)

    def build(
        self, row: Mapping[str, Any], groups: Sequence[str], servers: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The model of one user (row: USER_FIELDS), or {} if nothing is visible."""
        name = row["username"]
        keys = self.keys_for(name, groups)
        if not keys:
            return {}
        admin = bool(row["is_superuser"])  # SQLite answers 0/1
        default = None
        visible: dict[str, dict[str, Any]] = {}
        for srv in servers:
            if srv["name"] == "":
                default = srv
            if not (self.include_stopped or is_active(srv["state"])):
                continue
            if self._all_servers or self.access.on_server(
                "read:servers", name, srv["name"], groups
            ):
                with_state = self._server_state or self.access.on_server(
                    "admin:server_state", name, srv["name"], groups
                )
                visible[srv["name"]] = server_model(name, srv, with_state=with_state)
        full = {
            "kind": "user",
            "name": name,
            "admin": admin,
            "roles": ["admin", "user"] if admin else ["user"],
            "groups": list(groups),
            "server": hosts.browser_url(name, server_url(name, ""))
            if default is not None and default["state"] == Server.State.RUNNING
            else None,
            "pending": _pending(default),
            "created": isoformat(row["created"]),
            "last_activity": isoformat(row["last_activity"]),
        }
        model = {key: full[key] for key in full if key in keys}
        if "servers" in keys or visible:
            model["servers"] = visible
        return model


def _pending(server: Mapping[str, Any] | None) -> str | None:
    if server is None:
        return None
    return {Server.State.STARTING: "spawn", Server.State.STOPPING: "stop"}.get(server["state"])


def user_models(
    users: QuerySet[User] | str, access: Access, *, include_stopped: bool = False
) -> list[dict[str, Any]]:
    """Models of USERS (a queryset, or one username) in three queries: the
    users, their groups, their servers.

    Groups and servers, and a single user by name, are read with plain SQL:
    the ORM spends several times longer compiling these fixed queries than
    the database spends answering them (bench/api.py)."""
    if isinstance(users, str):
        rows = _user_by_name(users)
    else:  # compiled by the ORM, but read raw: its per-value converters cost more here
        sql, params = users.values_list(*USER_FIELDS).query.sql_with_params()
        rows = [dict(zip(USER_FIELDS, row, strict=True)) for row in _select(sql, params)]
    ids = [r["id"] for r in rows]
    groups = _groups_of(ids)
    servers = _servers_of(ids, include_stopped=include_stopped)
    builder = UserModels(access, include_stopped=include_stopped)
    out = []
    for row in rows:
        model = builder.build(row, groups.get(row["id"], ()), servers.get(row["id"], ()))
        if model:
            out.append(model)
    return out


def user_model(user: User, access: Access, *, include_stopped: bool = False) -> dict[str, Any]:
    models = user_models(user.username, access, include_stopped=include_stopped)
    return models[0] if models else {}


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _select(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _user_by_name(name: str) -> list[dict[str, Any]]:
    columns = ", ".join(USER_FIELDS)
    found = _select(f"SELECT {columns} FROM {_table(User)} WHERE username = %s", [name])
    return [dict(zip(USER_FIELDS, row, strict=True)) for row in found]


def _groups_of(ids: list[int]) -> dict[int, list[str]]:
    """user id -> group names, sorted."""
    groups: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return groups
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"SELECT m.user_id, g.name FROM {_table(Group.members.through)} m "
        f"JOIN {_table(Group)} g ON g.id = m.group_id "
        f"WHERE m.user_id IN ({marks}) ORDER BY g.name"
    )
    for user_id, name in _select(sql, ids):
        groups[user_id].append(name)
    return groups


def _servers_of(ids: list[int], *, include_stopped: bool) -> dict[int, list[dict[str, Any]]]:
    """user id -> server rows (SERVER_FIELDS), active ones unless INCLUDE_STOPPED."""
    servers: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not ids:
        return servers
    marks = ", ".join(["%s"] * len(ids))
    sql = f"SELECT {', '.join(SERVER_FIELDS)} FROM {_table(Server)} WHERE user_id IN ({marks})"
    params: list[Any] = list(ids)
    if not include_stopped:
        sql += " AND state NOT IN (%s, %s)"
        params += [Server.State.STOPPED, Server.State.FAILED]
    for values in _select(sql, params):
        row = dict(zip(SERVER_FIELDS, values, strict=True))
        for key in ("user_options", "spawner_state"):
            if isinstance(row[key], str | bytes):  # SQLite and MySQL hand JSON back as text
                row[key] = json.loads(row[key])
        servers[row["user_id"]].append(row)
    return servers


def group_model(group: Group, access: Access, members: Sequence[str] | None = None) -> dict:
    """JupyterHub's Group model; read:groups:name alone shows only kind and name."""
    model: dict[str, Any] = {"kind": "group", "name": group.name}
    if access.on_group("read:groups", group.name):
        if members is None:
            members = list(group.members.order_by("username").values_list("username", flat=True))
        model.update(users=list(members), properties=group.properties, roles=[])
    return model


def group_models(groups: QuerySet[Group], access: Access) -> list[dict[str, Any]]:
    rows = list(groups)
    members: dict[int, list[str]] = defaultdict(list)
    through = Group.members.through.objects.filter(group_id__in=[g.pk for g in rows])
    for group_id, username in through.order_by("user__username").values_list(
        "group_id", "user__username"
    ):
        members[group_id].append(username)
    return [group_model(g, access, members[g.pk]) for g in rows]


def token_model(token: ApiToken) -> dict[str, Any]:
    """JupyterHub's Token model (scopes are the token's effective scopes)."""
    owner_key, owner = (
        ("user", token.user.username) if token.user_id else ("service", token.service)
    )
    if token.oauth_client_id:
        client = token.oauth_client.description or token.oauth_client.identifier
    elif token.kind == ApiToken.Kind.SERVER:
        client = "Server"
    else:
        client = "JupyterHub"
    return {
        owner_key: owner,
        "id": token.api_id,
        "kind": "api_token",
        "roles": [],
        "scopes": sorted(token_scopes(token)),
        "created": isoformat(token.created),
        "last_activity": isoformat(token.last_activity),
        "expires_at": isoformat(token.expires_at),
        "note": token.note,
        "session_id": token.session_id or None,
        "oauth_client": client,
    }


def auth_state_of(name: str) -> dict[str, Any] | None:
    """The user's decrypted auth_state; None when off or none was kept."""
    from accounts import auth_state

    if not auth_state.is_enabled():
        return None
    token = User.objects.filter(username=name).values_list("encrypted_auth_state", flat=True)
    return auth_state.decrypt(token.first() or "")
