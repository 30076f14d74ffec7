"""Changes to servers. Every state transition is a compare-and-set UPDATE, so
a Celery task that runs twice (acks_late + redelivery) finds the row already
moved and does nothing."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts import auth_state
from accounts import policy as sign_in_policy
from accounts import services as account_services
from accounts.models import ApiToken, OAuthClient, User
from servers import hosts
from servers import options as profile_options
from servers.models import Profile, Server, ServerEvent
from servers.spawners import SpawnError, SpawnSpec, get_spawner

log = logging.getLogger(__name__)
State = Server.State


class StartRefused(Exception):
    """A start request that cannot be honoured; status is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- profiles -----------------------------------------------------------------


def allowed_profiles(user: User) -> QuerySet[Profile]:
    """Profiles with no group restriction, plus those of the user's groups."""
    mine = Q(allowed_groups__isnull=True) | Q(allowed_groups__members=user)
    return Profile.objects.filter(mine).distinct().order_by("order", "id")


def pick_profile(user: User, slug: str | None) -> Profile | None:
    profiles = list(allowed_profiles(user))
    if slug:
        for profile in profiles:
            if profile.slug == slug:
                return profile
        raise StartRefused(f"profile {slug!r} does not exist or is not allowed for you", 400)
    return next((p for p in profiles if p.default), profiles[0] if profiles else None)


# --- requests from people and scripts -----------------------------------------


def get_or_create_server(user: User, name: str) -> Server:
    server, _ = Server.objects.get_or_create(user=user, name=name)
    return server


def named_server_allowed(user: User, name: str) -> None:
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
    from scheduler import tasks

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
        raise StartRefused("Too many users trying to log in right now. Try again soon.", 429)
    now = timezone.now()
    claimed = Server.objects.filter(pk=server.pk, state__in=[State.STOPPED, State.FAILED]).update(
        state=State.STARTING,
        remove_on_stop=False,
        profile=profile,
        user_options=dict(user_options),
        failure="",
        url="",
        requested_at=now,
        changed=now,
        started=None,
    )
    if not claimed:
        return False
    server.refresh_from_db()
    ServerEvent.objects.create(
        server=server,
        kind=ServerEvent.Kind.START_REQUESTED,
        progress=0,
        message="Server requested",
        actor=by,
    )
    _enqueue_on_commit(tasks.spawn_server, server)
    return True


@transaction.atomic
def request_stop(server: Server, *, by: str, remove: bool = False) -> bool:
    """Claim running|starting -> stopping and enqueue the stop after commit.
    False when it is already stopped or stopping."""
    from scheduler import tasks

    now = timezone.now()
    claimed = Server.objects.filter(pk=server.pk, state__in=[State.RUNNING, State.STARTING]).update(
        state=State.STOPPING, changed=now, remove_on_stop=bool(remove and server.name)
    )
    if not claimed:
        return False
    server.refresh_from_db()
    ServerEvent.objects.create(
        server=server,
        kind=ServerEvent.Kind.STOP_REQUESTED,
        message="Stop requested; the server will be removed"
        if server.remove_on_stop
        else "Stop requested",
        actor=by,
    )
    _enqueue_on_commit(tasks.stop_server, server)
    return True


def _enqueue_on_commit(task: Any, server: Server) -> None:
    """Send the task once the transaction commits. If the broker cannot be
    reached the server is marked failed with that reason rather than left
    pending forever; reconcile_servers covers a worker that dies later."""

    def send() -> None:
        try:
            task.apply_async((server.pk,), retry=True, retry_policy=_PUBLISH_RETRY)
        except Exception as exc:  # kombu raises several unrelated types here
            log.error("could not enqueue %s for %s: %s", task.name, server, exc)
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


def remove_when_stopped(server: Server, *, by: str) -> bool:
    """Ask that a named server already stopping be removed once stopped;
    removes it now if it has stopped meanwhile. True if it is gone already."""
    Server.objects.filter(pk=server.pk).exclude(name="").update(remove_on_stop=True)
    ServerEvent.objects.create(
        server=server, kind=ServerEvent.Kind.STOP_REQUESTED, message="Removal requested", actor=by
    )
    if Server.objects.filter(pk=server.pk, state__in=[State.STOPPED, State.FAILED]).exists():
        Server.objects.filter(pk=server.pk).delete()
        return True
    return False


def stop_now(server: Server, *, by: str) -> None:
    """Stop in this process rather than through a task: deleting a user
    removes the row, so a queued stop would find nothing and leak the process."""
    request_stop(server, by=by)
    stop_on_spawner(server.pk)


def _removal_requested(server: Server) -> bool:
    return bool(server.name) and Server.objects.filter(pk=server.pk, remove_on_stop=True).exists()


def delete_server(server: Server) -> None:
    """Remove a named server's record; it must be stopped first."""
    if server.state not in (State.STOPPED, State.FAILED):
        raise StartRefused("stop the server before removing it", 400)
    server.delete()


# --- work done by the workers -------------------------------------------------


def note_progress(server: Server, progress: int, message: str) -> None:
    ServerEvent.objects.create(
        server=server, kind=ServerEvent.Kind.PROGRESS, progress=progress, message=message
    )


def _issue_credentials(server: Server) -> str:
    """A fresh server token plus the OAuth client whose secret it is."""
    ApiToken.objects.filter(server=server, kind=ApiToken.Kind.SERVER).delete()
    OAuthClient.objects.filter(Q(server=server) | Q(identifier=server.client_id)).delete()
    username = server.user.username
    token, raw = account_services.issue_token(
        server.user,
        scopes=[
            f"users:activity!user={username}",
            f"access:servers!server={username}/{server.name}",
        ],
        note=f"server token for {server}",
        kind=ApiToken.Kind.SERVER,
        check_owner=False,
    )
    ApiToken.objects.filter(pk=token.pk).update(server=server)
    client = OAuthClient(
        identifier=server.client_id,
        description=f"Server at {server.prefix}",
        # absolute on the user's host with subdomains: matched exactly at authorize
        redirect_uri=hosts.browser_url(server.user.username, f"{server.prefix}oauth_callback"),
        allowed_scopes=[],
        server=server,
    )
    client.set_secret(raw)
    client.save()
    return raw


def build_spec(server: Server, api_token: str) -> SpawnSpec:
    profile = server.profile
    options = server.options()
    options.pop("profile", None)
    overrides = profile_options.choose(profile.options if profile else {}, options)
    fields: dict[str, Any] = {}
    if profile is not None:
        fields = {
            "user_env": profile.user_env,
            "image": profile.image,
            "environment": dict(profile.environment),
            "cpu_limit": profile.cpu_limit,
            "cpu_guarantee": profile.cpu_guarantee,
            "mem_limit": profile.mem_limit,
            "mem_guarantee": profile.mem_guarantee,
            "extra_resource_limits": dict(profile.extra_resource_limits),
        }
        overrides = {**profile.spawner_overrides, **overrides}
    # the sign-in's upstream token (auth_state), under what the profile sets
    upstream = auth_state.spawn_environment(server.user.encrypted_auth_state)
    fields["environment"] = {**upstream, **fields.get("environment", {})}
    known = {k: v for k, v in overrides.items() if k in SpawnSpec.__dataclass_fields__}
    if "environment" in known:
        known["environment"] = {**fields.get("environment", {}), **known["environment"]}
    fields.update(known)
    return SpawnSpec(
        username=server.user.username,
        server_name=server.name,
        prefix=server.prefix,
        api_token=api_token,
        client_id=server.client_id,
        api_url=settings.HUB_API_URL,
        public_url=settings.HUB_PUBLIC_URL,
        user_host=hosts.user_host(server.user.username),
        hub_host=hosts.hub_host() if settings.HUB_SUBDOMAIN_HOST else "",
        home=Path(settings.HUB_HOMES_DIR) / server.user.username,
        default_url=settings.HUB_DEFAULT_URL,
        activity_interval=settings.HUB_ACTIVITY_INTERVAL,
        overrides=overrides,
        **fields,
    )


def start_on_spawner(server_id: int) -> None:
    """Start the server claimed by request_start and wait until it answers.

    On any failure the process is cleaned up and the server marked failed
    with the reason, so the user sees why instead of a spinner forever."""
    server = Server.objects.select_related("user", "profile").filter(pk=server_id).first()
    if server is None or server.state != State.STARTING:
        return
    spawner = get_spawner()
    deadline = time.monotonic() + settings.HUB_START_TIMEOUT
    note_progress(server, 10, "Preparing your server")
    state: dict[str, Any] = {}
    try:
        raw = _issue_credentials(server)
        spec = build_spec(server, raw)
        started = spawner.start(spec, lambda pct, msg: note_progress(server, pct, msg))
        state = started.state
        if not Server.objects.filter(pk=server.pk, state=State.STARTING).update(
            spawner_state=state, url=started.url
        ):
            spawner.stop(state, grace=settings.HUB_STOP_GRACE)
            return  # stopped or deleted meanwhile
        note_progress(server, 50, "Waiting for the server to answer")
        _wait_ready(server, spawner, state, started.url + server.prefix + "api", deadline)
    except SpawnError as exc:
        if state:
            spawner.stop(state, grace=settings.HUB_STOP_GRACE)
        mark_failed(server, str(exc))
        return
    if mark_running(server.pk, url=started.url):
        ServerEvent.objects.create(
            server=server,
            kind=ServerEvent.Kind.READY,
            progress=100,
            message=f"Server ready at {server.prefix}",
        )
    else:
        log.info("%s was stopped while starting", server)


def _wait_ready(
    server: Server, spawner: Any, state: dict[str, Any], api_url: str, deadline: float
) -> None:
    """Poll `<url>/api` until it answers below 500 (JupyterHub's readiness rule).

    The time between the server listening and us noticing is spawn time the
    user waits for (bench/spawn.py), so the poll is frequent (20 ms growing to
    50 ms). It stays cheap with many servers starting because, until the port
    accepts connections, only a TCP connect is tried (~0.02 ms of CPU, against
    ~0.4 ms for an HTTP request through requests). Cancellation is checked in
    the database at most every 0.5 s."""
    parts = urlsplit(api_url)
    address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    delay = 0.02
    session = requests.Session()
    next_cancel_check = 0.0
    while True:
        if spawner.poll(state) is not None:
            raise SpawnError(spawner.describe_failure(state))
        if _accepts_connections(address):
            try:
                if session.get(api_url, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
        now = time.monotonic()
        if now > deadline:
            raise SpawnError(
                f"the server did not answer within {settings.HUB_START_TIMEOUT:.0f} seconds"
            )
        if now >= next_cancel_check:
            if not Server.objects.filter(pk=server.pk, state=State.STARTING).exists():
                raise SpawnError("start cancelled")
            next_cancel_check = now + 0.5
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def _accepts_connections(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def mark_running(server_id: int, *, url: str) -> bool:
    now = timezone.now()
    return bool(
        Server.objects.filter(pk=server_id, state=State.STARTING).update(
            state=State.RUNNING, url=url, started=now, last_activity=now, changed=now
        )
    )


def mark_failed(server: Server, reason: str) -> None:
    now = timezone.now()
    moved = Server.objects.filter(pk=server.pk, state__in=[State.STARTING, State.RUNNING]).update(
        state=State.FAILED, failure=reason, url="", changed=now
    )
    if moved:
        ServerEvent.objects.create(
            server=server, kind=ServerEvent.Kind.FAILED, progress=100, message=reason
        )
        _revoke_credentials(server)


def stop_on_spawner(server_id: int) -> None:
    """Stop the process and release the route and credentials."""
    server = Server.objects.select_related("user").filter(pk=server_id).first()
    if server is None or server.state != State.STOPPING:
        return
    if server.spawner_state:
        get_spawner().stop(server.spawner_state, grace=settings.HUB_STOP_GRACE)
    now = timezone.now()
    if Server.objects.filter(pk=server.pk, state=State.STOPPING).update(
        state=State.STOPPED, url="", spawner_state={}, changed=now
    ):
        ServerEvent.objects.create(server=server, kind=ServerEvent.Kind.STOPPED, message="Stopped")
        _revoke_credentials(server)
        if _removal_requested(server):
            Server.objects.filter(pk=server.pk, state=State.STOPPED).delete()


def _revoke_credentials(server: Server) -> None:
    ApiToken.objects.filter(server=server).delete()
    OAuthClient.objects.filter(server=server).delete()


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


# --- activity -----------------------------------------------------------------


class UnknownServer(ValueError):
    pass


def record_activity(
    user: User, *, last_activity: datetime | None, servers: Mapping[str, datetime | None]
) -> None:
    """Move last_activity forward only (JupyterHub's activity semantics)."""
    names = set(servers)
    known = {s.name: s for s in user.servers.filter(name__in=names)}
    missing = names - set(known)
    if missing:
        raise UnknownServer(f"No such server(s) for {user.username}: {', '.join(sorted(missing))}")
    newest = [t for t in [last_activity, *servers.values()] if t is not None]
    for name, when in servers.items():
        if when is not None:
            Server.objects.filter(pk=known[name].pk).filter(
                Q(last_activity__isnull=True) | Q(last_activity__lt=when)
            ).update(last_activity=when)
    if newest:
        user.note_activity(max(newest))
