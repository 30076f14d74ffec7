"""The audit log: who did what security-relevant thing, from where.

Hook points stay small: Django's auth signals (accounts/signals.py), one call
in the token services, the admin's change log and bulk actions
(accounts/admin.py), and the OAuth check that lets someone into another
user's server. Recording never fails the action it records."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, transaction
from django.http import HttpRequest

from accounts.models import AuditEvent

log = logging.getLogger(__name__)
Action = AuditEvent.Action


def client_address(request: HttpRequest | None) -> str | None:
    """The peer address as the hub sees it (the router's, behind it)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    *,
    actor: str = "",
    target: str = "",
    request: HttpRequest | None = None,
    **detail: Any,
) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's intact
            AuditEvent.objects.create(
                action=action,
                actor=actor[:255],
                target=target[:255],
                address=client_address(request),
                detail=detail,
            )
    except DatabaseError:
        log.exception("audit: could not record %s by %r on %r", action, actor, target)
    log.info("audit: %s actor=%r target=%r %s", action, actor, target, detail or "")


def is_admin_api_call(method: str, path: str, *, actor: str, owner: str | None) -> bool:
    """Whether a successful API call is an admin action worth a record: it
    changes something (not a read), it is not an activity report (servers and
    routers send those all the time), and it acts on someone else's user, or
    on no user at all (groups, users list, services)."""
    if method in ("GET", "HEAD", "OPTIONS") or path.rstrip("/").endswith("/activity"):
        return False
    return owner != actor
