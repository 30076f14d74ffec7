"""Who may sign in, whatever the method: pure decisions on values.

JupyterHub's rules: blocked users never; admins always; otherwise the user must
be on an allow-list (users or groups) when one is configured. An allow-list
that is configured but empty allows nobody (fails closed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from accounts.validators import normalize_username


@dataclass(frozen=True)
class Policy:
    allowed_users: frozenset[str] | None = None  # None: no user allow-list
    allowed_groups: frozenset[str] | None = None  # hub group names
    blocked_users: frozenset[str] = frozenset()
    admin_users: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        *,
        allowed_users: Iterable[str] | None = None,
        allowed_groups: Iterable[str] | None = None,
        blocked_users: Iterable[str] = (),
        admin_users: Iterable[str] = (),
    ) -> Policy:
        def names(values: Iterable[str]) -> frozenset[str]:
            return frozenset(normalize_username(v) for v in values if v.strip())

        return cls(
            allowed_users=None if allowed_users is None else names(allowed_users),
            allowed_groups=None if allowed_groups is None else frozenset(allowed_groups),
            blocked_users=names(blocked_users),
            admin_users=names(admin_users),
        )

    @property
    def has_allow_list(self) -> bool:
        return self.allowed_users is not None or self.allowed_groups is not None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    make_admin: bool = False  # HUB_ADMIN_USERS: made admin at this login


def decide(username: str, groups: Iterable[str], *, is_admin: bool, policy: Policy) -> Verdict:
    name = normalize_username(username)
    if name in policy.blocked_users:
        return Verdict(False, "blocked")
    if name in policy.admin_users:
        return Verdict(True, make_admin=True)
    if is_admin or not policy.has_allow_list:
        return Verdict(True)
    if policy.allowed_users and name in policy.allowed_users:
        return Verdict(True)
    if policy.allowed_groups and policy.allowed_groups & set(groups):
        return Verdict(True)
    return Verdict(False, "not on the allow-list")


def configured_policy() -> Policy:
    """The policy from HUB_ALLOWED_USERS, HUB_ALLOWED_GROUPS, HUB_BLOCKED_USERS
    and HUB_ADMIN_USERS (hubsite/settings.py)."""
    from django.conf import settings

    return Policy.build(
        allowed_users=settings.HUB_ALLOWED_USERS,
        allowed_groups=settings.HUB_ALLOWED_GROUPS,
        blocked_users=settings.HUB_BLOCKED_USERS,
        admin_users=settings.HUB_ADMIN_USERS,
    )


def is_allowed_now(user, *, ask_directory: bool = False) -> bool:
    """Whether USER may still sign in and start servers, by their hub groups
    now (an admin removed them from an allowed group; the directory or the
    provider dropped them at their last login). ASK_DIRECTORY: an LDAP user's
    directory entry and groups are looked up again first."""
    if ask_directory and settings_has_ldap():
        from accounts.backends import still_in_directory

        if not still_in_directory(user):
            return False
    groups = user.hub_groups.values_list("name", flat=True)
    return decide(
        user.username, groups, is_admin=user.is_superuser, policy=configured_policy()
    ).allowed


def settings_has_ldap() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "AUTH_LDAP_SERVER_URI", ""))
