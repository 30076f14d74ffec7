"""Which storage is a user's: their home directory (local servers) or volume
claim (Kubernetes) is named once, at their first start, and keeps that name
when the user is renamed (KubeSpawner's remember_pvc_name). Named from the
username, so existing homes are found as before; a name another user's
storage already has gets a suffix, so a new account taking a renamed user's
old name starts empty instead of inside the other's files."""

from __future__ import annotations

import itertools

from django.db import IntegrityError, transaction

from accounts.models import User


def storage_name(user: User) -> str:
    """USER's storage name, assigned now if they never had one."""
    if user.storage_name:
        return user.storage_name
    for n in itertools.count(1):
        candidate = user.username if n == 1 else f"{user.username}-{n}"
        try:
            with transaction.atomic():
                taken = User.objects.filter(storage_name=candidate).exclude(pk=user.pk).exists()
                if taken:
                    continue
                User.objects.filter(pk=user.pk, storage_name="").update(storage_name=candidate)
        except IntegrityError:  # a concurrent first start of another user took it
            continue
        user.refresh_from_db(fields=["storage_name"])
        if user.storage_name:  # ours, or what a concurrent start of this user set
            return user.storage_name
    raise AssertionError("unreachable")
