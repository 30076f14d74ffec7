"""The periodic schedule that celery beat runs."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "reconcile-servers": {"task": "scheduler.reconcile_servers", "schedule": 15.0},
}
