"""Who is calling: a user or a service, through a token or a session, with
the expanded scopes that every API check reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
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
    roles = ["user"] + (["admin"] if user.is_superuser else [])
    raw = [s for role in roles for s in sc.role_scopes(role)]
    return sc.expand(raw, username=user.username)


def token_scopes(token: ApiToken) -> frozenset[str]:
    """A token never has more than its owner has now (JupyterHub semantics)."""
    if token.user_id is None:
        return sc.expand(token.scopes)
    owner = user_scopes(token.user)
    requested = sc.expand(token.scopes or ["inherit"], username=token.user.username)
    if "inherit" in (token.scopes or ["inherit"]):
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
    candidates = ApiToken.objects.select_related("user").filter(prefix=tokens.lookup_prefix(raw))
    for token in candidates:
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


def _touch(token: ApiToken) -> None:
    """Record last use at most once a minute: not a write per request."""
    now = timezone.now()
    if token.last_activity is None or now - token.last_activity > _TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_activity=now)
        token.last_activity = now
