"""What every sign-in records, whatever the method: how the user signed in,
the groups the method says they are in (mirrored into hub groups), admin
from the method's admin groups, and (when on) the upstream auth_state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from accounts import auth_state
from accounts.models import Group, User
from accounts.validators import hub_group_name


def hub_group_names(external: Iterable[str]) -> list[str]:
    """Valid hub names of the external groups, sorted, without duplicates."""
    return sorted({name for name in map(hub_group_name, external) if name})


@transaction.atomic
def sync_groups(user: User, external: Iterable[str]) -> list[str]:
    """Make the user a member of exactly the groups the method reports, among
    those it reported before: memberships an admin gave in the hub stay."""
    names = hub_group_names(external)
    gone = set(user.external_groups or []) - set(names)
    if gone:
        user.hub_groups.remove(*Group.objects.filter(name__in=gone))
    for name in names:
        group, _ = Group.objects.get_or_create(name=name)
        group.members.add(user)
    user.external_groups = names
    return names


@transaction.atomic
def record_sign_in(
    user: User,
    *,
    method: str,
    groups: Iterable[str] | None = None,
    admin: bool | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """GROUPS None: the method does not manage groups. ADMIN None: it does not
    manage the admin flag. STATE None: nothing to keep."""
    fields = ["sign_in"]
    user.sign_in = method
    if method != User.SignIn.LOCAL and user.has_usable_password():
        # the directory or provider vouches for this person now: a hub password
        # set on the same name before (a sign-up) must not also open the account
        user.set_unusable_password()
        fields.append("password")
    if admin is not None:
        user.is_superuser = user.is_staff = admin
        fields += ["is_superuser", "is_staff"]
    if groups is not None:
        sync_groups(user, groups)
        fields.append("external_groups")
    if state is not None and auth_state.is_enabled():
        user.encrypted_auth_state = auth_state.encrypt(state)
        fields.append("encrypted_auth_state")
    user.save(update_fields=fields)
