"""JupyterHub's User, Group and Token models, built as plain dicts and
filtered field by field by what the caller's scopes allow on each user
(JupyterHub's `user_model` access map)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import QuerySet

from accounts.api.access import Access
from accounts.identity import token_scopes
from accounts.models import ApiToken, Group, User
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
        admin = row["is_superuser"]
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
            "server": server_url(name, "")
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
    users: QuerySet[User], access: Access, *, include_stopped: bool = False
) -> list[dict[str, Any]]:
    """Models of USERS in three queries (users, their groups, their servers)."""
    rows = list(users.values(*USER_FIELDS))
    ids = [r["id"] for r in rows]
    groups: dict[int, list[str]] = defaultdict(list)
    servers: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if ids:
        through = Group.members.through.objects.filter(user_id__in=ids)
        for user_id, group in through.order_by("group__name").values_list("user_id", "group__name"):
            groups[user_id].append(group)
        server_rows = Server.objects.filter(user_id__in=ids)
        if not include_stopped:
            server_rows = server_rows.active()
        for srv in server_rows.order_by().values(*SERVER_FIELDS):
            servers[srv["user_id"]].append(srv)
    builder = UserModels(access, include_stopped=include_stopped)
    out = []
    for row in rows:
        model = builder.build(row, groups[row["id"]], servers[row["id"]])
        if model:
            out.append(model)
    return out


def user_model(user: User, access: Access, *, include_stopped: bool = False) -> dict[str, Any]:
    models = user_models(User.objects.filter(pk=user.pk), access, include_stopped=include_stopped)
    return models[0] if models else {}


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
