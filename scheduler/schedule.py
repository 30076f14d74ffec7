"""The periodic schedule that celery beat runs (intervals from settings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        "reconcile-servers": {
            "task": "scheduler.reconcile_servers",
            "schedule": settings.HUB_RECONCILE_EVERY,
        },
        "cull-idle-servers": {
            "task": "scheduler.cull_idle_servers",
            "schedule": settings.HUB_CULL_EVERY,
        },
    }
