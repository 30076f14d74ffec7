"""Changes to accounts: users, groups and tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import audit, tokens
from accounts import scopes as sc
from accounts.identity import user_scopes
from accounts.models import ApiToken, Group, User
from accounts.validators import validate_username


class TokenScopeError(ValueError):
    """Requested scopes the owner does not hold or that do not exist."""


class AccountRefused(ValueError):
    """A change to users or groups that breaks a rule (bad name, servers running);
    the API answers 400 with the message."""


class AlreadyExists(ValueError):
    """The user or group to create exists already (the API answers 409)."""


def is_valid_name(name: str) -> bool:
    """Users and groups follow the same rule (a URL segment, a directory)."""
    try:
        validate_username(name)
    except ValidationError:
        return False
    return True


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
    server_id: int | None = None,
    check_owner: bool = True,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw secret (shown once, never stored).
    SERVER_ID: the server whose credential it is (revoked with it)."""
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
        server_id=server_id,
        expires_at=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
    )
    token.set_secret(raw)
    token.save()
    if kind == ApiToken.Kind.API:  # OAuth tokens: recorded as server access in accounts.oauth
        owner = user.username if user is not None else f"service:{service}"
        audit.record(
            audit.Action.TOKEN_CREATED, target=owner, token=token.pk, note=note, scopes=requested
        )
    return token, raw


def revoke_token(token: ApiToken, *, by: str = "") -> None:
    owner = token.user.username if token.user_id else f"service:{token.service}"
    audit.record(audit.Action.TOKEN_REVOKED, actor=by, target=owner, token=token.pk)
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


def create_users(names: Iterable[str], *, admin: bool = False) -> list[User]:
    """Create all or none: one bad or taken name and nothing is created."""
    names = list(names)
    invalid = [n for n in names if not is_valid_name(n)]
    if invalid:
        label = "Invalid username" if len(invalid) == 1 else "Invalid usernames"
        raise AccountRefused(f"{label}: {', '.join(invalid)}")
    taken = User.objects.filter(username__in=names).values_list("username", flat=True).first()
    if taken:
        raise AlreadyExists(f"User {taken} already exists")
    try:
        with transaction.atomic():
            return [create_user(name, admin=admin) for name in names]
    except IntegrityError:
        raise AlreadyExists("User already exists") from None


def rename_user(user: User, new_name: str) -> None:
    """JupyterHub's rules: a free, valid name, and no server running (their
    URLs, tokens and OAuth clients carry the old name)."""
    if User.objects.filter(username=new_name).exists():
        raise AccountRefused(f"User {new_name} already exists, username must be unique")
    if user.servers.active().exists():
        raise AccountRefused(f"Stop {user.username}'s servers before renaming the user")
    if not is_valid_name(new_name):
        raise AccountRefused(f"Invalid username: {new_name}")
    user.username = new_name
    user.save(update_fields=["username"])


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


@transaction.atomic
def create_groups(
    names: Iterable[str], *, members: Iterable[User] = (), properties: Any = None
) -> list[Group]:
    """Create all or none, each with the same members and properties."""
    names = list(names)
    if properties is not None and not isinstance(properties, dict):
        raise AccountRefused("properties must be a JSON dict")
    invalid = next((n for n in names if not is_valid_name(n)), None)
    if invalid is not None:
        raise AccountRefused(f"Invalid group name: {invalid}")
    taken = Group.objects.filter(name__in=names).values_list("name", flat=True).first()
    if taken:
        raise AlreadyExists(f"Group {taken} already exists")
    members = list(members)
    groups = []
    for name in names:
        group = Group.objects.create(name=name, properties=properties or {})
        group.members.add(*members)
        groups.append(group)
    return groups


def set_group_properties(group: Group, properties: dict[str, Any]) -> None:
    group.properties = properties
    group.save(update_fields=["properties"])


def delete_group(group: Group) -> None:
    group.delete()
