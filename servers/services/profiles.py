"""Which profiles a user may start, and which one a start request picks."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.models import Group, User
from servers import profile_list
from servers.models import Profile
from servers.services.errors import StartRefused


def allowed_profiles(user: User) -> QuerySet[Profile]:
    """Profiles with no group restriction, plus those of the user's groups."""
    mine = Q(allowed_groups__isnull=True) | Q(allowed_groups__members=user)
    return Profile.objects.filter(mine).distinct().order_by("order", "id")


def pick_profile(user: User, slug: str | None) -> Profile | None:
    """The named profile (refused when not allowed), else the default one,
    else the first; None when no profile is defined (the default environment)."""
    profiles = list(allowed_profiles(user))
    if slug:
        for profile in profiles:
            if profile.slug == slug:
                return profile
        raise StartRefused(f"profile {slug!r} does not exist or is not allowed for you", 400)
    return next((p for p in profiles if p.default), profiles[0] if profiles else None)


@transaction.atomic
def import_profiles(records: list[profile_list.ProfileRecord]) -> list[str]:
    """Create or update one profile per record (matched by slug), all or none;
    groups named in allowed_groups are created if missing."""
    defaults = [r.slug for r in records if r.default]
    if defaults:
        Profile.objects.exclude(slug__in=defaults).update(default=False)
    return [_import_profile(record) for record in records]


def _import_profile(record: profile_list.ProfileRecord) -> str:
    cleared = {
        "image": "",
        "mem_limit": "",
        "mem_guarantee": "",
        "environment": {},
        "cpu_limit": None,
        "cpu_guarantee": None,
        "extra_resource_limits": {},
    }
    profile, created = Profile.objects.update_or_create(
        slug=record.slug,
        defaults={
            **cleared,
            **record.columns,
            "display_name": record.display_name,
            "description": record.description,
            "default": record.default,
            "order": record.order,
            "spawner_overrides": record.spawner_overrides,
            "options": record.options,
        },
    )
    profile.allowed_groups.set(
        [Group.objects.get_or_create(name=name)[0] for name in record.allowed_groups]
    )
    return f"{'created' if created else 'updated'} profile {record.slug}"
