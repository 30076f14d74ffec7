"""Which storage is a user's: their home directory (local servers) or volume
claim (Kubernetes) is named once, at their first start, and keeps that name
when the user is renamed (KubeSpawner's remember_pvc_name). Named from the
username, so existing homes are found as before; a name another user's
storage already has gets a suffix, so a new account taking a renamed user's
old name starts empty instead of inside the other's files."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import User


def storage_name(user: User) -> str:
    """USER's storage name, assigned now if they never had one."""
    n = 1
    while not user.storage_name:
        candidate = user.username if n == 1 else f"{user.username}-{n}"
        n += 1
        if User.objects.filter(storage_name=candidate).exists():
            continue
        try:
            with transaction.atomic():
                User.objects.filter(pk=user.pk, storage_name="").update(storage_name=candidate)
        except IntegrityError:  # a concurrent first start of another user took it
            continue
        # ours, or what a concurrent first start of this same user set
        user.refresh_from_db(fields=["storage_name"])
    return user.storage_name
