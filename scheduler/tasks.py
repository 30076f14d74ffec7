"""Thin Celery tasks: take ids, re-fetch, call a servers service.

acks_late + reject_on_worker_lost: a worker that dies mid-task leaves the
message to be redelivered; the compare-and-set transitions in servers.services
make the second run harmless. servers.services sends these by name
(services.SPAWN_TASK, STOP_TASK) and never imports this module."""

from __future__ import annotations

import logging

from celery import shared_task

from servers import services

log = logging.getLogger(__name__)


@shared_task(name="scheduler.spawn_server", acks_late=True, reject_on_worker_lost=True)
def spawn_server(server_id: int) -> None:
    services.start_on_spawner(server_id)


@shared_task(name="scheduler.stop_server", acks_late=True, reject_on_worker_lost=True)
def stop_server(server_id: int) -> None:
    services.stop_on_spawner(server_id)


@shared_task(name="scheduler.reconcile_servers", acks_late=True)
def reconcile_servers() -> int:
    """The database is the truth: running servers whose process died become
    failed (their route goes with them), and pending servers orphaned by a
    dead worker are finished. Each action is logged at WARNING."""
    actions = services.reconcile_servers()
    for action in actions:
        log.warning("reconcile: %s", action)
    return len(actions)
