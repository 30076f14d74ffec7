"""Changes to accounts: users, groups and tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts import scopes as sc
from accounts import tokens
from accounts.identity import user_scopes
from accounts.models import ApiToken, Group, User


class TokenScopeError(ValueError):
    """Requested scopes the owner does not hold or that do not exist."""


def issue_token(
    user: User | None,
    *,
    scopes: Iterable[str] = ("inherit",),
    note: str = "",
    expires_in: float | None = None,
    kind: str = ApiToken.Kind.API,
    service: str = "",
    session_id: str = "",
    oauth_client_id: int | None = None,
    check_owner: bool = True,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw secret (shown once, never stored)."""
    requested = list(scopes) or ["inherit"]
    for scope in requested:
        try:
            sc.validate(scope)
        except sc.ScopeError as exc:
            raise TokenScopeError(str(exc)) from None
    if user is not None and check_owner and "inherit" not in requested:
        held = user_scopes(user)
        wanted = sc.expand(requested, username=user.username)
        missing = sorted(s for s in wanted if s not in sc.intersect(frozenset([s]), held))
        if missing:
            raise TokenScopeError(f"not allowed to request scopes: {', '.join(missing)}")
    raw = tokens.generate()
    token = ApiToken(
        user=user,
        service=service,
        scopes=requested,
        note=note,
        kind=kind,
        session_id=session_id,
        oauth_client_id=oauth_client_id,
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
    )
    token.set_secret(raw)
    token.save()
    return token, raw


def revoke_token(token: ApiToken) -> None:
    token.delete()


def revoke_session_tokens(session_id: str) -> int:
    """Logout: OAuth tokens given out during this hub session stop working."""
    if not session_id:
        return 0
    deleted, _ = ApiToken.objects.filter(session_id=session_id, kind=ApiToken.Kind.OAUTH).delete()
    return deleted


@transaction.atomic
def create_user(username: str, *, admin: bool = False, approved: bool = True) -> User:
    user = User(username=username, is_superuser=admin, is_staff=admin, is_approved=approved)
    user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    return user


def set_admin(user: User, admin: bool) -> None:
    """The hub admin flag is Django's superuser flag; staff follows so /hub/admin works."""
    user.is_superuser = admin
    user.is_staff = admin
    user.save(update_fields=["is_superuser", "is_staff"])


def approve_users(users: Iterable[User]) -> int:
    ids = [u.pk for u in users]
    return User.objects.filter(pk__in=ids, is_approved=False).update(is_approved=True)


def set_group_members(group: Group, usernames: Iterable[str], *, add: bool) -> list[str]:
    """Add or remove members by name; returns names that do not exist."""
    names = list(dict.fromkeys(usernames))
    found = list(User.objects.filter(username__in=names))
    missing = sorted(set(names) - {u.username for u in found})
    if missing:
        return missing
    if add:
        group.members.add(*found)
    else:
        group.members.remove(*found)
    return []
