"""The work a Celery worker does for a claimed server: build its spawn spec,
start it on the spawner and wait until it answers, or stop it and release
its route and credentials."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from accounts import auth_state
from accounts.models import User
from servers import hosts
from servers import options as profile_options
from servers.models import Server, ServerEvent
from servers.services.claims import mark_failed, mark_running, request_stop
from servers.services.credentials import issue_credentials, revoke_credentials
from servers.spawners import SpawnError, SpawnSpec, get_spawner

log = logging.getLogger(__name__)
State = Server.State


def note_progress(server: Server, progress: int, message: str) -> None:
    ServerEvent.objects.create(
        server=server, kind=ServerEvent.Kind.PROGRESS, progress=progress, message=message
    )


def build_spec(server: Server, api_token: str) -> SpawnSpec:
    """What the spawner starts: the profile's fields, then its spawner
    overrides, then those the user's chosen options imply."""
    profile = server.profile
    options = server.options()
    options.pop("profile", None)
    overrides = profile_options.choose(profile.options if profile else {}, options)
    fields: dict[str, Any] = {"default_url": settings.HUB_DEFAULT_URL}
    if profile is not None:
        fields |= {
            "user_env": profile.user_env,
            "image": profile.image,
            "environment": dict(profile.environment),
            "cpu_limit": profile.cpu_limit,
            "cpu_guarantee": profile.cpu_guarantee,
            "mem_limit": profile.mem_limit,
            "mem_guarantee": profile.mem_guarantee,
            "extra_resource_limits": dict(profile.extra_resource_limits),
        }
        overrides = profile_options.merge(profile.spawner_overrides, overrides)
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
        raw = issue_credentials(server)
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


def stop_on_spawner(server_id: int) -> None:
    """Stop the process and release the route and credentials."""
    server = Server.objects.select_related("user").filter(pk=server_id).first()
    if server is None or server.state != State.STOPPING:
        return
    if server.spawner_state:
        get_spawner().stop(server.spawner_state, grace=settings.HUB_STOP_GRACE)
    if Server.objects.filter(pk=server.pk, state=State.STOPPING).update(
        state=State.STOPPED, url="", spawner_state={}, changed=timezone.now()
    ):
        ServerEvent.objects.create(server=server, kind=ServerEvent.Kind.STOPPED, message="Stopped")
        revoke_credentials(server)
        if server.name:
            Server.objects.filter(pk=server.pk, state=State.STOPPED, remove_on_stop=True).delete()


def stop_now(server: Server, *, by: str) -> None:
    """Stop in this process rather than through a task: deleting a user
    removes the row, so a queued stop would find nothing and leak the process."""
    request_stop(server, by=by)
    stop_on_spawner(server.pk)


def delete_user(user: User, *, by: str) -> None:
    """Remove an account, stopping its servers here first (see stop_now), then
    what the spawner keeps for the user (a Kubernetes claim, by the
    operator's HUB_K8S_PVC_ON_USER_DELETE)."""
    for server in user.servers.active():
        stop_now(server, by=by)
    username = user.username
    user.delete()
    for action in get_spawner().forget_user(username):
        log.warning("%s (deleted by %s)", action, by)
