"""Who is calling: a user or a service, through a token or a session, with
the expanded scopes that every API check reads."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import connection, models
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts import scopes as sc
from accounts import tokens
from accounts.models import ApiToken, User

ROUTER_SERVICE = "router"
ROUTER_SCOPES = ("proxy", "read:users:name", "read:servers", "users:activity")
_TOUCH_EVERY = timedelta(seconds=60)
SESSION_ID_KEY = "hub_session_id"


@dataclass
class Identity:
    user: User | None
    scopes: frozenset[str]
    token: ApiToken | None = None
    service: str = ""
    session_id: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "user" if self.user is not None else "service"

    @property
    def name(self) -> str:
        return self.user.username if self.user is not None else self.service

    def has(self, scope: str, target: sc.Target | None = None) -> bool:
        return sc.allows(self.scopes, scope, target)

    def has_any(self, scope: str) -> bool:
        return sc.allows_any(self.scopes, scope)

    @cached_property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.is_superuser


def user_scopes(user: User) -> frozenset[str]:
    """Everything USER's roles grant: `user` always, `admin` for superusers."""
    return _role_scopes(user.username, user.is_superuser)


# Expansion is pure and runs on every API request: cache it by its inputs
# (a token's scopes, its owner's name and admin flag), never by the token.
@lru_cache(maxsize=4096)
def _role_scopes(username: str, admin: bool) -> frozenset[str]:
    roles = ["user"] + (["admin"] if admin else [])
    raw = [s for role in roles for s in sc.role_scopes(role)]
    return sc.expand(raw, username=username)


def token_scopes(token: ApiToken) -> frozenset[str]:
    """A token never has more than its owner has now (JupyterHub semantics)."""
    wanted = tuple(token.scopes or ["inherit"])
    if token.user_id is None:
        return _expand(wanted)
    return _owned_token_scopes(wanted, token.user.username, token.user.is_superuser)


@lru_cache(maxsize=4096)
def _expand(scopes: tuple[str, ...]) -> frozenset[str]:
    return sc.expand(scopes)


@lru_cache(maxsize=4096)
def _owned_token_scopes(wanted: tuple[str, ...], username: str, admin: bool) -> frozenset[str]:
    owner = _role_scopes(username, admin)
    requested = sc.expand(wanted, username=username)
    if "inherit" in wanted:
        return owner | requested
    return sc.intersect(requested, owner)


def for_session(user: User, session_id: str = "") -> Identity:
    return Identity(user=user, scopes=user_scopes(user), session_id=session_id)


def session_id_for(session: SessionBase) -> str:
    """The public id of a hub session (JupyterHub's `jupyterhub-session-id`).

    OAuth tokens and /hub/api/user carry it, so servers see it: it must not be
    the Django session key, which is the login credential itself. A random id
    kept in the session data survives key rotation (password change, login
    again as the same user) and goes away when logout flushes the session."""
    value = session.get(SESSION_ID_KEY)
    if not value:
        value = uuid.uuid4().hex
        session[SESSION_ID_KEY] = value
    return str(value)


def router_identity() -> Identity:
    return Identity(user=None, service=ROUTER_SERVICE, scopes=sc.expand(ROUTER_SCOPES))


def resolve_token(raw: str) -> Identity | None:
    """The identity behind a raw token string, or None if it is not valid now."""
    if not tokens.is_plausible(raw):
        return None
    if constant_time_compare(raw, settings.HUB_ROUTER_TOKEN):
        return router_identity()
    for token in _candidates(tokens.lookup_prefix(raw)):
        if not token.matches(raw):
            continue
        if token.is_expired:
            return None
        if token.user_id is not None and not (token.user.is_active and token.user.is_approved):
            return None
        _touch(token)
        return Identity(
            user=token.user,
            service=token.service,
            scopes=token_scopes(token),
            token=token,
            session_id=token.session_id,
        )
    return None


def _candidates(prefix: str) -> list[ApiToken]:
    """Tokens with this lookup prefix, each with its user, in one plain SQL
    query: this runs on every API request and the ORM spends longer compiling
    the query than the database answering it (see bench/api.py)."""
    token_fields = [f for f in ApiToken._meta.concrete_fields]
    user_fields = [f for f in User._meta.concrete_fields if f.attname != "password"]
    quote = connection.ops.quote_name
    columns = [f"t.{quote(f.column)}" for f in token_fields]
    columns += [f"u.{quote(f.column)}" for f in user_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(ApiToken._meta.db_table)} t "
        f"LEFT JOIN {quote(User._meta.db_table)} u ON u.id = t.user_id WHERE t.prefix = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        rows = cursor.fetchall()
    found = []
    for row in rows:
        token = _instance(ApiToken, token_fields, row[: len(token_fields)])
        if token.user_id is not None:
            token.user = _instance(User, user_fields, row[len(token_fields) :])
        found.append(token)
    return found


def _instance(model: Any, fields: list[Any], values: tuple[Any, ...]) -> Any:
    """A model instance from raw column values, converted as the ORM would
    (fields not loaded stay deferred, so a later save() cannot clobber them)."""
    converted = []
    for field_, value in zip(fields, values, strict=True):
        if value is not None:
            if isinstance(field_, models.BooleanField):
                value = bool(value)
            elif isinstance(field_, models.DateTimeField):
                if isinstance(value, str):
                    value = datetime.fromisoformat(value)
                if timezone.is_naive(value):
                    value = value.replace(tzinfo=UTC)
            elif isinstance(field_, models.JSONField) and isinstance(value, str | bytes):
                value = json.loads(value)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _touch(token: ApiToken) -> None:
    """Record last use at most once a minute: not a write per request."""
    now = timezone.now()
    if token.last_activity is None or now - token.last_activity > _TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_activity=now)
        token.last_activity = now
