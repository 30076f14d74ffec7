"""The Celery app. Configuration comes from Django settings (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")

app = Celery("hubsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["scheduler"])


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    from scheduler.schedule import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
