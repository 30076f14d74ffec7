"""Thin Celery tasks: take ids, re-fetch, call a servers service.

acks_late + reject_on_worker_lost: a worker that dies mid-task leaves the
message to be redelivered; the compare-and-set transitions in servers.services
make the second run harmless. servers.services sends these by name
(services.SPAWN_TASK, STOP_TASK) and never imports this module."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from servers import services

log = logging.getLogger(__name__)


@shared_task(name="scheduler.spawn_server", acks_late=True, reject_on_worker_lost=True)
def spawn_server(server_id: int) -> None:
    services.start_on_spawner(server_id)


@shared_task(name="scheduler.stop_server", acks_late=True, reject_on_worker_lost=True)
def stop_server(server_id: int) -> None:
    # a pod still terminating after a moment is finished by this process's
    # pending stops, and this thread takes the next task (services/stopping.py)
    services.stop_on_spawner(server_id, hand_off=True)


@shared_task(name="scheduler.reconcile_servers", acks_late=True)
def reconcile_servers() -> int:
    """The database is the truth (servers/services/reconcile.py): dead
    servers failed, starts of dead workers taken over or failed, orphan
    processes stopped. Each repair is logged at WARNING."""
    actions = services.reconcile_servers()
    for action in actions:
        log.warning("reconcile: %s", action)
    return len(actions)


@shared_task(name="scheduler.cull_idle_servers", acks_late=True)
def cull_idle_servers() -> int:
    """One pass of the idle culler (servers/services/culls.py) at HUB_CULL_EVERY."""
    report = services.cull_idle()
    if report.stopped or report.deleted_users:
        log.info(
            "cull: %d of %d running servers stopped (%d asked about kernels), "
            "%d users deleted, in %.2fs",
            len(report.stopped),
            report.running,
            report.asked,
            len(report.deleted_users),
            report.seconds,
        )
    return len(report.stopped) + len(report.deleted_users)


@worker_shutdown.connect
def _finish_pending_stops(sender: object = None, **_: object) -> None:
    """Stops handed off to this process finish before it exits, within a
    grace period; what is left is reconcile's (a stale stop)."""
    left = services.pending_stops().drain(timeout=settings.HUB_STOP_GRACE)
    if left:
        log.warning("%d stops still pending at shutdown: reconcile finishes them", left)


@worker_ready.connect
def _reconcile_at_start(sender: object = None, **_: object) -> None:
    """A worker that starts (after a crash, a deploy, a reboot) asks for a
    reconcile pass at once rather than at the next beat."""
    reconcile_servers.delay()
