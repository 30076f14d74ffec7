"""Reconciling the database (what should be) with the spawner (what is):
pending servers orphaned by a dead worker are finished, running servers whose
process died become failed, and what the spawner runs for no server is removed."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from servers.models import Server
from servers.services.claims import mark_failed
from servers.services.launch import stop_on_spawner
from servers.spawners import get_spawner

State = Server.State


def expire_stale(*, now: datetime | None = None) -> list[str]:
    """Servers stuck pending because their worker died: a start older than the
    start timeout (plus a margin) fails and its process is cleaned up; a stop
    older than the grace period is finished here. Returns what was done."""
    now = now or timezone.now()
    done: list[str] = []
    start_cutoff = now - timedelta(seconds=settings.HUB_START_TIMEOUT + 30)
    for server in Server.objects.filter(state=State.STARTING, requested_at__lt=start_cutoff):
        if server.spawner_state:
            get_spawner().stop(server.spawner_state, grace=settings.HUB_STOP_GRACE)
        mark_failed(server, "The start did not finish in time (its worker may have died).")
        done.append(f"failed stale start of {server}")
    stop_cutoff = now - timedelta(seconds=settings.HUB_STOP_GRACE + 30)
    for server in Server.objects.filter(state=State.STOPPING, changed__lt=stop_cutoff):
        stop_on_spawner(server.pk)
        done.append(f"finished stale stop of {server}")
    return done


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


def reconcile_servers() -> list[str]:
    """One reconcile pass over every server; returns what was done."""
    actions = expire_stale()
    for server in Server.objects.filter(state=State.RUNNING).select_related("user"):
        if not check_alive(server):
            actions.append(f"marked {server} failed: its process is gone")
    return actions + sweep_orphans()
