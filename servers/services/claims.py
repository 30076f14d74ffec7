"""State claims: the compare-and-set transitions people, scripts and workers
make, and the hand-off of the claimed work to the task queue.

Tasks are sent by name (SPAWN_TASK, STOP_TASK), not imported, so this module
never imports scheduler.tasks, which imports it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import policy as sign_in_policy
from accounts.models import User
from hubsite.celery import app
from servers import hosts, metrics
from servers import options as profile_options
from servers.models import Server, ServerEvent
from servers.services.credentials import revoke_credentials
from servers.services.errors import StartRefused
from servers.services.profiles import pick_profile

log = logging.getLogger(__name__)
State = Server.State

# the Celery names of scheduler.tasks.spawn_server / stop_server
SPAWN_TASK = "scheduler.spawn_server"
STOP_TASK = "scheduler.stop_server"


def named_server_allowed(user: User, name: str) -> None:
    """Refuse a named server when they are off or the user is at the limit."""
    if name == "":
        return
    if not settings.HUB_ALLOW_NAMED_SERVERS:
        raise StartRefused("named servers are not enabled", 400)
    limit = settings.HUB_NAMED_SERVER_LIMIT
    active = user.servers.active().exclude(name__in=["", name]).count()
    if limit and active >= limit:
        raise StartRefused(f"{user.username} already has {active} named servers running", 400)


@transaction.atomic
def request_start(server: Server, *, by: str, user_options: Mapping[str, Any]) -> bool:
    """Claim stopped -> starting and enqueue the spawn after commit.
    False when the server is already running or pending (nothing to do)."""
    if server.state in (State.RUNNING, State.STARTING, State.STOPPING):
        return False
    if hosts.is_hostless(server.user.username):
        # the router would never route to it (servers/hosts.py): refuse loudly
        raise StartRefused(
            f"{server.user.username!r} cannot be a host name, and servers here run on "
            f"<user>.{settings.HUB_SUBDOMAIN_HOST}; ask an administrator to rename the account.",
            400,
        )
    if not sign_in_policy.is_allowed_now(server.user, ask_directory=True):
        # blocked, or no longer on an allow-list (left an allowed group)
        raise StartRefused(f"{server.user.username} is not allowed to use this hub", 403)
    named_server_allowed(server.user, server.name)
    options = dict(user_options)
    profile = pick_profile(server.user, options.pop("profile", None))
    try:
        profile_options.choose(profile.options if profile else {}, options)
    except profile_options.OptionsError as exc:
        raise StartRefused(str(exc), 400) from None
    limit = settings.HUB_CONCURRENT_SPAWN_LIMIT
    if limit and Server.objects.filter(state=State.STARTING).count() >= limit:
        metrics.SERVER_SPAWN_DURATION_SECONDS.labels(status="throttled").observe(0)
        raise StartRefused("Too many users trying to log in right now. Try again soon.", 429)
    now = timezone.now()
    claim = {
        "state": State.STARTING,
        "remove_on_stop": False,
        "profile": profile,
        "user_options": dict(user_options),
        "failure": "",
        "url": "",
        "requested_at": now,
        "changed": now,
        "started": None,
        "attempt": "",
        "worker": "",
        "heartbeat": None,
    }
    claimed = Server.objects.filter(pk=server.pk, state__in=[State.STOPPED, State.FAILED]).update(
        **claim
    )
    if not claimed:
        return False
    _note(server, claim)
    ServerEvent.objects.create(
        server=server,
        kind=ServerEvent.Kind.START_REQUESTED,
        progress=0,
        message="Server requested",
        actor=by,
    )
    _enqueue_on_commit(SPAWN_TASK, server)
    return True


@transaction.atomic
def request_stop(server: Server, *, by: str, remove: bool = False) -> bool:
    """Claim running|starting -> stopping and enqueue the stop after commit.
    False when it is already stopped or stopping."""
    claim = {
        "state": State.STOPPING,
        "changed": timezone.now(),
        "remove_on_stop": bool(remove and server.name),
    }
    claimed = Server.objects.filter(pk=server.pk, state__in=[State.RUNNING, State.STARTING]).update(
        **claim
    )
    if not claimed:
        return False
    _note(server, claim)
    ServerEvent.objects.create(
        server=server,
        kind=ServerEvent.Kind.STOP_REQUESTED,
        message="Stop requested; the server will be removed"
        if server.remove_on_stop
        else "Stop requested",
        actor=by,
    )
    _enqueue_on_commit(STOP_TASK, server)
    return True


def _note(server: Server, claim: Mapping[str, Any]) -> None:
    """Bring SERVER up to date with the claim just written, instead of
    re-reading its row (a query per start and per stop). What comes after a
    claim (its event, the task, the API's answer) reads only claimed fields;
    the others stay as the caller read them."""
    for field, value in claim.items():
        setattr(server, field, value)


def requeue_start(server: Server, *, expected_attempt: str) -> bool:
    """Send the spawn task again for a start whose worker died (its lease ran
    out) or that no task ever claimed; reconcile decides when. The claim is a
    compare-and-set on the attempt, so two reconcile passes requeue it once.
    The attempt is kept (the next task takes it over and cleans up after it);
    `worker` empty marks it free to claim and `heartbeat` is the time of this
    enqueue, so reconcile waits a lease before enqueueing it again."""
    moved = Server.objects.filter(
        pk=server.pk, state=State.STARTING, attempt=expected_attempt, heartbeat=server.heartbeat
    ).update(worker="", heartbeat=timezone.now())
    if moved:
        _enqueue_on_commit(SPAWN_TASK, server)
    return bool(moved)


def _enqueue_on_commit(task_name: str, server: Server) -> None:
    """Send the task once the transaction commits. If the broker cannot be
    reached the server is marked failed with that reason rather than left
    pending forever; reconcile_servers covers a worker that dies later."""

    def send() -> None:
        try:
            app.send_task(task_name, (server.pk,), retry=True, retry_policy=_PUBLISH_RETRY)
        except Exception as exc:  # kombu raises several unrelated types here
            log.error("could not enqueue %s for %s: %s", task_name, server, exc)
            _fail_unsent(server, f"The task queue is unreachable ({type(exc).__name__}).")

    transaction.on_commit(send)


_PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 1}


def _fail_unsent(server: Server, reason: str) -> None:
    now = timezone.now()
    moved = Server.objects.filter(pk=server.pk, state__in=[State.STARTING, State.STOPPING]).update(
        state=State.FAILED, failure=reason, changed=now
    )
    if moved:
        ServerEvent.objects.create(
            server=server, kind=ServerEvent.Kind.FAILED, progress=100, message=reason
        )


def mark_running(server_id: int, *, url: str, attempt: str | None = None) -> bool:
    """starting -> running; False when it was stopped or removed meanwhile
    (or, with ATTEMPT, taken over by another spawn attempt)."""
    now = timezone.now()
    rows = Server.objects.filter(pk=server_id, state=State.STARTING)
    if attempt is not None:
        rows = rows.filter(attempt=attempt)
    return bool(
        rows.update(state=State.RUNNING, url=url, started=now, last_activity=now, changed=now)
    )


def mark_failed(server: Server, reason: str) -> None:
    """starting|running -> failed with REASON (shown to the user); the
    server's credentials stop working. One transaction: whoever sees the
    server failed sees its event and its credentials gone (CI once caught a
    failed server whose token was still there, a few ms before its revoke)."""
    now = timezone.now()
    with transaction.atomic():
        moved = Server.objects.filter(
            pk=server.pk, state__in=[State.STARTING, State.RUNNING]
        ).update(state=State.FAILED, failure=reason, url="", changed=now)
        if moved:
            ServerEvent.objects.create(
                server=server, kind=ServerEvent.Kind.FAILED, progress=100, message=reason
            )
            revoke_credentials(server)
