"""Which profiles a user may start, and which one a start request picks."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import User
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
