"""The Celery app. Configuration comes from Django settings (CELERY_*)."""

from __future__ import annotations

import logging
import os
import warnings

from celery import Celery, signals
from celery.exceptions import SecurityWarning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")

# the broker connection survives being closed after Redis went away (hubsite/broker_connection.py)
app = Celery("hubsite", amqp="hubsite.broker_connection:AMQP")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["scheduler"])


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    from scheduler.schedule import beat_schedule

    sender.conf.beat_schedule = beat_schedule()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(**_: object) -> None:
    """What Django does around each request: a connection that failed, or is
    older than CONN_MAX_AGE, is closed; the others are kept, and checked
    before their next use (CONN_HEALTH_CHECKS)."""
    from django.db import close_old_connections

    close_old_connections()


@signals.celeryd_init.connect
def _say_once_what_root_means(**_: object) -> None:
    """Celery's own warning about root is about pickle, which the hub does not
    accept (json only), and it comes back at every worker start in its words.
    What matters here is what root means for the hub: say that, once per start."""
    if os.geteuid() != 0:
        return
    warnings.filterwarnings("ignore", category=SecurityWarning)
    logging.getLogger("hubsite.celery").warning("The worker runs as root: %s", _what_root_means())


def _what_root_means() -> str:
    from django.conf import settings

    from servers.spawners.isolation import resolve_mode

    if settings.HUB_SPAWNER == "kubernetes":
        return "servers are pods, whose users and capabilities their pod settings decide."
    mode = resolve_mode(settings.HUB_LOCAL_ISOLATION, euid=0)
    if mode == "users":
        return "each user's servers run as that user's own system account, in a sandbox."
    if mode == "sandbox":
        return (
            "servers run as root, without capabilities, in a sandbox that hides the data dir "
            "(HUB_LOCAL_ISOLATION=users gives each user an account of their own)."
        )
    return (
        "so do the servers it starts (HUB_LOCAL_ISOLATION=none): run the hub as an ordinary "
        "user, or with isolation, if its users do not trust each other."
    )
