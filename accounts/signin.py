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


def stop_servers_if_refused(user: User) -> int:
    """With HUB_STOP_SERVERS_WHEN_REFUSED, a user the policy no longer lets in
    loses their running servers too; returns how many stops were requested."""
    from django.conf import settings

    from accounts import policy
    from servers import services as server_services
    from servers.models import Server

    if not settings.HUB_STOP_SERVERS_WHEN_REFUSED or policy.is_allowed_now(user):
        return 0
    active = Server.objects.filter(
        user=user, state__in=[Server.State.RUNNING, Server.State.STARTING]
    )
    return sum(server_services.request_stop(server, by="policy") for server in active)


def on_membership_change(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """Group.members lost someone (in the admin, the API, a sign-in's sync)."""
    if action != "post_remove":
        return
    users = [instance] if reverse else list(User.objects.filter(pk__in=pk_set or ()))
    for user in users:
        stop_servers_if_refused(user)
