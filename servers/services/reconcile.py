"""Reconciling the database (what should be) with the spawner (what is),
from the pure plan of scheduler/reconcile.py: running servers whose process
died become failed (their route goes with them), starts whose worker died
are enqueued again (the next task takes them over) or, past the start
timeout, failed and cleaned up, stale stops are finished, and processes that
carry our marks but that no active row accounts for are stopped; last, the
backend removes what it runs for no active server (Spawner.cleanup: pods).

Every repair goes through a compare-and-set claim, so two passes at once
(a second beat started by mistake) repair each thing once."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hubsite.processes import identity_alive
from scheduler import reconcile as plan
from servers import metrics
from servers.models import Server, ServerEvent
from servers.services.claims import mark_failed, requeue_start
from servers.services.launch import stop_leftovers, stop_on_spawner
from servers.spawners import Spawner, get_spawner

log = logging.getLogger(__name__)
State = Server.State
ACTIVE = [State.STARTING, State.RUNNING, State.STOPPING]


def check_alive(server: Server) -> bool:
    """Reconcile one running server: a dead process becomes a failed server."""
    if server.state != State.RUNNING or not server.spawner_state:
        return True
    spawner = get_spawner()
    if spawner.poll(server.spawner_state) is None:
        return True
    mark_failed(server, spawner.describe_failure(server.spawner_state))
    return False


def sweep_orphans() -> list[str]:
    """Ask the spawner to remove what belongs to no starting, running or
    stopping server (a pod left by a dead worker, or by a failed server)."""
    active = Server.objects.filter(
        state__in=[State.STARTING, State.RUNNING, State.STOPPING]
    ).values_list("user__username", "name")
    return get_spawner().cleanup(list(active), grace=settings.HUB_STOP_GRACE)


def timing() -> plan.Timing:
    return plan.Timing(
        start_timeout=settings.HUB_START_TIMEOUT,
        stop_grace=settings.HUB_STOP_GRACE,
        lease=settings.HUB_SPAWN_LEASE,
    )


def _row(server: Server, spawner: Spawner) -> plan.Row:
    alive = None
    if server.state == State.RUNNING and server.spawner_state:
        alive = spawner.poll(server.spawner_state) is None
    return plan.Row(
        server_id=server.pk,
        username=server.user.username,
        name=server.name,
        state=server.state,
        requested_at=server.requested_at,
        changed=server.changed,
        attempt=server.attempt,
        heartbeat=server.heartbeat,
        alive=alive,
        # worker "" means released for the next task (requeued): nobody to be dead
        worker_alive=identity_alive(server.worker) if server.worker else None,
    )


def reconcile_servers(*, now: datetime | None = None) -> list[str]:
    """One pass, O(active servers) plus one spawner listing; returns what it
    did, one line per repair."""
    now = now or timezone.now()
    spawner = get_spawner()
    servers = {s.pk: s for s in Server.objects.filter(state__in=ACTIVE).select_related("user")}
    rows = [_row(s, spawner) for s in servers.values()]
    processes = [
        plan.Process(r.username, r.server_name, r.attempt, r.state) for r in spawner.list_running()
    ]
    done = []
    for action in plan.plan(rows, processes, now, timing()):
        line = _apply(action, servers, spawner)
        if line:
            metrics.RECONCILE_REPAIRS.labels(action=type(action).__name__).inc()
            done.append(line)
    return done + sweep_orphans()


def _apply(action: plan.Action, servers: dict[int, Server], spawner: Spawner) -> str | None:
    if isinstance(action, plan.StopOrphan):
        process = action.process
        spawner.stop(process.state, grace=settings.HUB_STOP_GRACE)
        return f"stopped a process of {process.username}/{process.name}: {action.reason}"
    server = servers[action.server_id]
    if isinstance(action, plan.MarkDead):
        if check_alive(server):
            return None
        return f"marked {server} failed: {action.reason}"
    if isinstance(action, plan.FailStart):
        if server.spawner_state:
            spawner.stop(server.spawner_state, grace=settings.HUB_STOP_GRACE)
        mark_failed(server, action.reason)
        stop_leftovers(server, spawner, keep_attempt="")
        return f"failed the stale start of {server}"
    if isinstance(action, plan.Requeue):
        # with its event, before the task is sent: a watcher reads why the
        # start goes on before the new attempt's first step (as _cull_server)
        with transaction.atomic():
            if not requeue_start(server, expected_attempt=server.attempt):
                return None
            ServerEvent.objects.create(
                server=server,
                kind=ServerEvent.Kind.RECONCILED,
                message=f"Start enqueued again: {action.reason}",
                actor="reconcile",
            )
        return f"enqueued the start of {server} again: {action.reason}"
    if isinstance(action, plan.FinishStop):
        stop_on_spawner(server.pk)
        return f"finished the stale stop of {server}"
    return None
