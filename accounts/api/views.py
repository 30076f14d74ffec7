"""JupyterHub-compatible REST API for users, groups and tokens (/hub/api).

Each view checks scopes with the caller's Access *before* looking the target
up, as JupyterHub's `needs_scope` does: without the scope you get 403 whether
or not the target exists; with it, a missing target is 404."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import scopes as sc
from accounts import services
from accounts.api import inputs
from accounts.api import serializers as out
from accounts.api.access import Access, denied
from accounts.api.base import (
    HubAPIView,
    find_user,
    page_bounds,
    paginated,
    user_groups,
    wants_pagination,
)
from accounts.api.errors import Conflict
from accounts.identity import Identity, user_scopes
from accounts.models import ApiToken, Group, User
from hubsite.middleware import JUPYTERHUB_VERSION
from servers import services as server_services
from servers.models import Server

_SORTS = {"id": "id", "name": "username", "last_activity": "last_activity"}


def root(request: HttpRequest) -> JsonResponse:
    """`GET /hub/api`: no authentication, so clients can check the version first."""
    response = JsonResponse({"version": JUPYTERHUB_VERSION})
    response["Access-Control-Allow-Origin"] = "*"
    return response


class InfoView(HubAPIView):
    def get(self, request: Request) -> Response:
        self.access.require(self.access.is_unfiltered("read:hub"), "read:hub")
        return Response(
            {
                "version": JUPYTERHUB_VERSION,
                "python": sys.version,
                "sys_executable": sys.executable,
                "authenticator": {"class": settings.ACCOUNT_ADAPTER, "version": ""},
                "spawner": {"class": f"servers.spawners.{settings.HUB_SPAWNER}", "version": ""},
            }
        )


class SelfView(HubAPIView):
    """`GET /user`: who the credentials belong to, with their expanded scopes."""

    def get(self, request: Request) -> Response:
        who = self.identity
        token = who.token
        if who.user is None:
            model: dict[str, Any] = {"kind": "service", "name": who.name, "admin": False}
            model["roles"] = []
        else:
            # every credential may read its owner's name and groups here
            name = who.user.username
            added = {f"read:users:name!user={name}", f"read:users:groups!user={name}"}
            widened = Identity(user=who.user, scopes=who.scopes | added)
            model = out.user_model(who.user, Access(widened))
        model["session_id"] = who.session_id or None
        model["token_id"] = token.api_id if token is not None else None
        model["scopes"] = sorted(who.scopes)
        return Response(model)


class UserListView(HubAPIView):
    def get(self, request: Request) -> Response:
        access = self.access
        query = access.user_query("list:users")
        users = User.objects.all() if query is None else User.objects.filter(query)
        users = _filter_users(users, request.query_params)
        offset, limit = page_bounds(request)
        include_stopped = "include_stopped_servers" in request.query_params
        page = users[offset : offset + limit]
        items = out.user_models(page, access, include_stopped=include_stopped)
        if wants_pagination(request):
            return Response(paginated(request, items, offset, limit, users.count()))
        return Response(items)

    def post(self, request: Request) -> Response:
        self.access.require(self.access.is_unfiltered("admin:users"), "admin:users")
        body = self.json_dict()
        names = inputs.string_list(body.get("usernames"), name="usernames")
        if not names:
            raise exceptions.ParseError("Must specify at least one user to create")
        admin = _flag(body, "admin")
        names = list(dict.fromkeys(n.strip().lower() for n in names))
        existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
        created = _create_users([n for n in names if n not in existing], admin=admin)
        if not created:
            raise Conflict(f"All {len(names)} users already exist")
        return Response(
            out.user_models(User.objects.filter(pk__in=[u.pk for u in created]), self.access),
            status=201,
        )


class UserView(HubAPIView):
    def get(self, request: Request, name: str) -> Response:
        self.access.require_user(name, *out.READ_USER_SCOPES, groups=user_groups(name))
        include_stopped = "include_stopped_servers" in request.query_params
        models = out.user_models(name, self.access, include_stopped=include_stopped)
        if not models:
            raise exceptions.NotFound(f"No such user: {name}")
        if self.access.on_user("admin:auth_state", name, user_groups(name)):
            # JupyterHub: only GET /users/{name}, only with admin:auth_state
            models[0]["auth_state"] = out.auth_state_of(name)
        return Response(models[0])

    def post(self, request: Request, name: str) -> Response:
        self.access.require(self.access.is_unfiltered("admin:users"), "admin:users")
        body = self.json_dict()
        name = name.strip().lower()
        if User.objects.filter(username=name).exists():
            raise Conflict(f"User {name} already exists")
        (user,) = _create_users([name], admin=_flag(body, "admin"))
        return Response(out.user_model(user, self.access), status=201)

    def patch(self, request: Request, name: str) -> Response:
        self.access.require_user(name, "admin:users", groups=user_groups(name))
        body = self.json_dict()
        if not set(body) & {"name", "admin"}:
            raise exceptions.ParseError("Specify at least one of 'name' or 'admin'")
        user = find_user(name)
        new_name = body.get("name", user.username)
        if not isinstance(new_name, str):
            raise exceptions.ParseError("name must be a string")
        admin = _flag(body, "admin") if "admin" in body else None
        if new_name != user.username:
            with _refusals():
                services.rename_user(user, new_name)
        if admin is not None:
            services.set_admin(user, admin)
        return Response(out.user_model(user, self.access))

    def delete(self, request: Request, name: str) -> Response:
        self.access.require_user(name, "delete:users", groups=user_groups(name))
        server_services.delete_user(find_user(name), by=self.identity.name)
        return Response(status=204)


class ActivityView(HubAPIView):
    """`POST /users/{name}/activity`: what jupyterhub-singleuser reports."""

    def post(self, request: Request, name: str) -> Response:
        self.access.require_user(name, "users:activity", groups=user_groups(name))
        user = find_user(name)
        body = self.json_body(default=None)
        if not isinstance(body, dict):
            raise exceptions.ParseError("body must be a json dict")
        last_activity = inputs.timestamp(body.get("last_activity"), name="last_activity")
        servers = body.get("servers")
        if not last_activity and not servers:
            raise exceptions.ParseError(
                "body must contain at least one of `last_activity` or `servers`"
            )
        if servers is not None and not isinstance(servers, dict):
            raise exceptions.ParseError("`servers` must be a dict")
        stamps: dict[str, datetime | None] = {}
        for server_name, info in (servers or {}).items():
            if not isinstance(info, dict) or "last_activity" not in info:
                raise exceptions.ParseError("server info must be a dict with last_activity")
            stamps[server_name] = inputs.timestamp(info["last_activity"], name="last_activity")
        try:
            server_services.record_activity(user, last_activity=last_activity, servers=stamps)
        except server_services.UnknownServer as exc:
            raise exceptions.ParseError(str(exc)) from None
        return Response(status=200)


class TokenListView(HubAPIView):
    def get(self, request: Request, name: str) -> Response:
        self.access.require_user(name, "read:tokens", groups=user_groups(name))
        user = find_user(name)
        tokens = ApiToken.objects.active().filter(user=user).select_related("user", "oauth_client")
        return Response({"api_tokens": [out.token_model(t) for t in tokens]})

    def post(self, request: Request, name: str) -> Response:
        self.access.require_user(name, "tokens", groups=user_groups(name))
        user = find_user(name)
        body = self.json_dict()
        who = self.identity
        note = body.get("note") or "Requested via api"
        if not body.get("note") and who.user != user:
            note += f" by {who.kind} {who.name}"
        requested = _requested_scopes(body, user.username)
        expires_in = inputs.seconds(body.get("expires_in"), name="expires_in")
        _check_grantable(who, user, requested)
        try:
            token, raw = services.issue_token(
                user, scopes=requested, note=str(note)[:1023], expires_in=expires_in or None
            )
        except services.TokenScopeError as exc:
            raise exceptions.PermissionDenied(str(exc)) from None
        model = out.token_model(token)
        model["token"] = raw
        return Response(model, status=201)


class TokenView(HubAPIView):
    def get(self, request: Request, name: str, token_id: str) -> Response:
        self.access.require_user(name, "read:tokens", groups=user_groups(name))
        return Response(out.token_model(_find_token(name, token_id)))

    def delete(self, request: Request, name: str, token_id: str) -> Response:
        self.access.require_user(name, "tokens", groups=user_groups(name))
        services.revoke_token(_find_token(name, token_id), by=self.identity.name)
        return Response(status=204)


class GroupListView(HubAPIView):
    def get(self, request: Request) -> Response:
        found = self.access.filters("list:groups")
        if not found:
            raise denied("list:groups")
        groups = Group.objects.order_by("id")
        if ("", "") not in found:
            groups = groups.filter(name__in=sorted(v for k, v in found if k == "group"))
        offset, limit = page_bounds(request)
        items = out.group_models(groups[offset : offset + limit], self.access)
        if wants_pagination(request):
            return Response(paginated(request, items, offset, limit, groups.count()))
        return Response(items)

    def post(self, request: Request) -> Response:
        self.access.require(self.access.is_unfiltered("admin:groups"), "admin:groups")
        body = self.json_dict()
        names = body.get("groups")
        if not names or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise exceptions.ParseError("Must specify at least one group to create")
        members = _users_named(body.get("users", []))
        with _refusals():
            created = services.create_groups(
                names, members=members, properties=body.get("properties")
            )
        return Response([out.group_model(g, self.access) for g in created], status=201)


class GroupView(HubAPIView):
    def get(self, request: Request, name: str) -> Response:
        if not any(self.access.on_group(s, name) for s in ("read:groups", "read:groups:name")):
            raise denied("read:groups", "read:groups:name")
        return Response(out.group_model(_find_group(name), self.access))

    def post(self, request: Request, name: str) -> Response:
        self.access.require(self.access.is_unfiltered("admin:groups"), "admin:groups")
        body = self.json_dict()
        members = _users_named(body.get("users", []))
        with _refusals():
            (group,) = services.create_groups(
                [name], members=members, properties=body.get("properties")
            )
        return Response(out.group_model(group, self.access), status=201)

    def delete(self, request: Request, name: str) -> Response:
        self.access.require(self.access.on_group("delete:groups", name), "delete:groups")
        services.delete_group(_find_group(name))
        return Response(status=204)


class GroupUsersView(HubAPIView):
    def post(self, request: Request, name: str) -> Response:
        return self._change(name, add=True)

    def delete(self, request: Request, name: str) -> Response:
        return self._change(name, add=False)

    def _change(self, name: str, *, add: bool) -> Response:
        self.access.require(self.access.on_group("groups", name), "groups")
        group = _find_group(name)
        users = self.json_dict().get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise exceptions.ParseError("Must specify users as a list of names")
        missing = services.set_group_members(group, users, add=add)
        if missing:
            raise exceptions.ParseError(f"Unknown users: {', '.join(missing)}")
        return Response(out.group_model(group, self.access))


class GroupPropertiesView(HubAPIView):
    def put(self, request: Request, name: str) -> Response:
        self.access.require(self.access.on_group("groups", name), "groups")
        group = _find_group(name)
        body = self.json_body(default=None)
        if not isinstance(body, dict):
            raise exceptions.ParseError("group properties must be a JSON dict")
        services.set_group_properties(group, body)
        return Response(out.group_model(group, self.access))


# --- helpers ------------------------------------------------------------------


def _filter_users(users: QuerySet[User], params: Any) -> QuerySet[User]:
    state = params.get("state")
    if state:
        servers = Server.objects.filter(user=OuterRef("pk"))
        if state == "ready":
            users = users.filter(Exists(servers.filter(state=Server.State.RUNNING)))
        elif state in ("active", "inactive"):
            active = Exists(servers.active())
            users = users.filter(active if state == "active" else ~active)
        else:
            raise exceptions.ParseError(f"Unrecognized state filter: {state!r}")
    name_filter = params.get("name_filter")
    if name_filter:
        users = users.filter(username__icontains=name_filter)
    sort = params.get("sort", "id")
    field = _SORTS.get(sort.lstrip("-"))
    if field is None:
        raise exceptions.ParseError(f"sort must be one of id, name, last_activity, not {sort!r}")
    if sort.startswith("-"):
        return users.order_by(F(field).desc(nulls_last=True), "-id")
    return users.order_by(F(field).asc(nulls_first=True), "id")


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise exceptions.ParseError(f"{key} must be true or false")
    return value


def _create_users(names: list[str], *, admin: bool) -> list[User]:
    with _refusals():
        return services.create_users(names, admin=admin)


@contextmanager
def _refusals() -> Iterator[None]:
    """accounts.services' refusals as JupyterHub's status codes."""
    try:
        yield
    except services.AccountRefused as exc:
        raise exceptions.ParseError(str(exc)) from None
    except services.AlreadyExists as exc:
        raise Conflict(str(exc)) from None


def _requested_scopes(body: dict[str, Any], owner: str) -> list[str]:
    scopes = inputs.string_list(body.get("scopes"), name="scopes")
    roles = inputs.string_list(body.get("roles"), name="roles")
    requested: list[str] = []
    for role in roles or []:
        try:
            role_scopes = sc.role_scopes(role)
        except sc.ScopeError:
            raise exceptions.PermissionDenied(f"Role {role} does not exist") from None
        # a role's bare `!user` means the token's owner; a bare `!server`
        # names no server for a personal token, so it grants nothing
        requested.extend(
            s + f"={owner}" if s.endswith("!user") else s
            for s in role_scopes
            if not s.endswith("!server")
        )
    requested.extend(scopes or [])
    for scope in requested:
        try:
            sc.validate(scope)
        except sc.ScopeError as exc:
            raise exceptions.ParseError(str(exc)) from None
    return requested or ["inherit"]


def _check_grantable(who: Identity, owner: User, requested: list[str]) -> None:
    """The requester cannot hand out more than it holds (a restricted token
    must not mint an `inherit` token of its owner)."""
    if who.user == owner and who.token is None:
        return  # the owner's own session holds everything the owner holds
    wanted = sc.expand([s for s in requested if s != "inherit"], username=owner.username) | (
        user_scopes(owner) if "inherit" in requested else frozenset()
    )
    covered = sc.intersect(wanted, who.scopes)
    missing = sorted(wanted - covered)
    if missing:
        raise exceptions.PermissionDenied(
            f"Not assigning requested scopes {', '.join(missing[:5])}"
            f"{'...' if len(missing) > 5 else ''}: the requester does not hold them"
        )


def _find_token(name: str, token_id: str) -> ApiToken:
    pk = token_id[1:] if token_id.startswith("a") else ""
    token = (
        ApiToken.objects.active()
        .select_related("user", "oauth_client")
        .filter(pk=int(pk) if pk.isdigit() else -1, user__username=name)
        .first()
    )
    if token is None:
        raise exceptions.NotFound(f"No such token: {token_id}")
    return token


def _find_group(name: str) -> Group:
    group = Group.objects.filter(name=name).first()
    if group is None:
        raise exceptions.NotFound(f"No such group: {name}")
    return group


def _users_named(names: Any) -> list[User]:
    names = inputs.string_list(names, name="users")
    users = list(User.objects.filter(username__in=names))
    missing = sorted(set(names) - {u.username for u in users})
    if missing:
        raise exceptions.ParseError(f"Unknown users: {', '.join(missing)}")
    return users
