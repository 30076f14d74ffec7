"""The work a Celery worker does for a claimed server: build its spawn spec,
start it on the spawner and wait until it answers, or stop it and release
its route and credentials."""

from __future__ import annotations

import http.client
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import auth_state
from accounts.models import User
from servers import hosts, metrics
from servers import options as profile_options
from servers.models import Server, ServerEvent
from servers.services import leases, stopping
from servers.services.claims import mark_failed, mark_running, request_stop
from servers.services.credentials import issue_credentials, revoke_credentials
from servers.services.storage import storage_name
from servers.spawners import Spawner, SpawnError, SpawnSpec, get_spawner

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
    storage = storage_name(server.user)
    return SpawnSpec(
        username=server.user.username,
        server_name=server.name,
        storage_name=storage,
        prefix=server.prefix,
        api_token=api_token,
        client_id=server.client_id,
        api_url=settings.HUB_API_URL,
        public_url=settings.HUB_PUBLIC_URL,
        user_host=hosts.user_host(server.user.username),
        hub_host=hosts.hub_host() if settings.HUB_SUBDOMAIN_HOST else "",
        home=Path(settings.HUB_HOMES_DIR) / storage,
        activity_interval=settings.HUB_ACTIVITY_INTERVAL,
        overrides=overrides,
        **fields,
    )


def start_on_spawner(server_id: int) -> None:
    """Start the server claimed by request_start and wait until it answers.

    The start is owned by one spawn attempt with a lease (servers/services/
    leases.py): a second task for it (redelivered after its worker died, or
    enqueued again by reconcile) takes over only from a dead owner, and
    first stops whatever that owner had launched. On any failure the process
    is cleaned up and the server marked failed with the reason, so the user
    sees why instead of a spinner forever."""
    server = Server.objects.select_related("user", "profile").filter(pk=server_id).first()
    if server is None or server.state != State.STARTING:
        return
    claimed = leases.claim(server, fresh=True)
    if claimed is None:
        log.info("%s: another worker owns this start", server)
        return
    attempt, previous = claimed
    spawner = get_spawner()
    if previous or server.spawner_state:
        note_progress(server, 5, "Taking over from a worker that stopped")
        if server.spawner_state:
            spawner.stop(server.spawner_state, grace=settings.HUB_STOP_GRACE)
        stop_leftovers(server, spawner, keep_attempt=attempt)
        Server.objects.filter(pk=server.pk, attempt=attempt).update(spawner_state={}, url="")
    with leases.Heartbeat(server.pk, attempt) as lease:
        _start(server, spawner, attempt, lease)


PORT_TRIES = 3  # a start whose port another process took is tried again on a new one


def _start(server: Server, spawner: Spawner, attempt: str, lease: leases.Heartbeat) -> None:
    deadline = time.monotonic() + settings.HUB_START_TIMEOUT
    note_progress(server, 10, "Preparing your server")
    state: dict[str, Any] = {}
    mine = Server.objects.filter(pk=server.pk, state=State.STARTING, attempt=attempt)
    try:
        raw = issue_credentials(server)
        spec = replace(build_spec(server, raw), attempt=attempt)

        def owned() -> bool:
            return not lease.lost.is_set() and mine.exists()

        for tries in range(1, PORT_TRIES + 1):
            started = spawner.start(spec, lambda pct, msg: note_progress(server, pct, msg))
            state = started.state
            if not mine.update(spawner_state=state, url=started.url):
                spawner.stop(state, grace=settings.HUB_STOP_GRACE)
                return  # stopped, deleted or taken over meanwhile
            note_progress(server, 50, "Waiting for the server to answer")
            try:
                _wait_ready(spawner, state, started.url + server.prefix + "api", deadline, owned)
            except SpawnError:
                if tries == PORT_TRIES or not spawner.lost_its_port(state) or not owned():
                    raise
                log.warning("%s: its port was taken before it bound it; starting again", server)
                spawner.stop(state, grace=settings.HUB_STOP_GRACE)
                state = {}
                note_progress(server, 30, "Its port was taken meanwhile: starting on another")
                continue
            break
    except SpawnError as exc:
        if state:
            spawner.stop(state, grace=settings.HUB_STOP_GRACE)
        if Server.objects.filter(pk=server.pk, attempt=attempt).exists():
            mark_failed(server, str(exc))
            _observe_spawn(server, "failure")
        return
    with transaction.atomic():  # whoever sees it running sees its ready event
        ready = mark_running(server.pk, url=started.url, attempt=attempt)
        if ready:
            ServerEvent.objects.create(
                server=server,
                kind=ServerEvent.Kind.READY,
                progress=100,
                message=f"Server ready at {server.prefix}",
            )
    if ready:
        _observe_spawn(server, "success")
    else:
        log.info("%s was stopped while starting", server)


def _observe_spawn(server: Server, status: str) -> None:
    if server.requested_at is not None:
        took = (timezone.now() - server.requested_at).total_seconds()
        metrics.SERVER_SPAWN_DURATION_SECONDS.labels(status=status).observe(took)


def stop_leftovers(server: Server, spawner: Spawner, *, keep_attempt: str) -> int:
    """Stop every process of SERVER the spawner lists that another spawn
    attempt than KEEP_ATTEMPT launched (KEEP_ATTEMPT "" keeps none)."""
    stopped = 0
    for running in spawner.list_running():
        if (running.username, running.server_name) != (server.user.username, server.name):
            continue
        if keep_attempt and running.attempt == keep_attempt:
            continue
        spawner.stop(running.state, grace=settings.HUB_STOP_GRACE)
        stopped += 1
    return stopped


def _wait_ready(
    spawner: Spawner,
    state: dict[str, Any],
    api_url: str,
    deadline: float,
    owned: Callable[[], bool],
) -> None:
    """Poll `<url>/api` until it answers below 500 (JupyterHub's readiness rule).

    The time between the server listening and us noticing is spawn time the
    user waits for (bench/spawn.py), so the poll is frequent: 20 ms growing to
    50 ms while a start is quick. Until the port accepts connections only a
    TCP connect is tried (~0.02 ms of CPU, against ~0.4 ms for an HTTP
    request). A start that takes longer (a crowd booting on a busy node: 100
    pods on the simulator took minutes) is polled less often, up to every
    0.25 s after 20 s, as a wait of 50 ms more matters little then and 32
    waits at 50 ms were most of the worker's CPU. Whether the process still
    lives is asked every 0.2 s (for a pod, the shared watch's copy), whether
    the start is still ours (not cancelled, not taken over) every 0.5 s, or
    every 4 polls once they are slower."""
    parts = urlsplit(api_url)
    address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    resolved: tuple[int, Any] | None = None
    delay = 0.02
    began = time.monotonic()
    next_cancel_check = next_poll = 0.0
    while True:
        if time.monotonic() >= next_poll:  # a process that died is noticed within 0.2 s
            if spawner.poll(state) is not None:
                raise SpawnError(spawner.describe_failure(state))
            next_poll = time.monotonic() + 0.2
        resolved = resolved or _resolve(address)
        if resolved is not None and _accepts_connections(*resolved) and _answers(api_url):
            return
        now = time.monotonic()
        if now > deadline:
            raise SpawnError(
                f"the server did not answer within {settings.HUB_START_TIMEOUT:.0f} seconds"
            )
        if now >= next_cancel_check:
            if not owned():
                raise SpawnError("start cancelled")
            next_cancel_check = now + max(0.5, 4 * delay)
        time.sleep(delay)
        delay = min(delay * 1.5, ready_poll_cap(now - began))


def ready_poll_cap(waited: float) -> float:
    """The longest pause between two readiness tries after WAITED seconds:
    50 ms for 10 s (a pod's server boots in ~2 s on the simulator, longer on
    a busy node: noticing it stays prompt), then 20 ms more per further
    second, up to 0.25 s."""
    return min(0.05 + 0.02 * max(waited - 10.0, 0.0), 0.25)


def _resolve(address: tuple[str, int]) -> tuple[int, Any] | None:
    """(family, socket address) of ADDRESS, looked up once for the whole wait
    rather than at each of its ~50 tries a second; None while it does not
    resolve (tried again next time)."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[0]
    except (OSError, IndexError):
        return None
    return family, sockaddr


def _answers(url: str, timeout: float = 2.0) -> bool:
    """Whether URL answers below 500, the redirect itself counting (as in
    JupyterHub's wait for a server). Plain http.client, one connection per
    try: requests' session and adapter layers cost the worker ~1.5 ms per
    start (py-spy), five times the request itself, and the server is ours to
    reach directly (no proxy from the environment, no .netrc)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status < 500
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _accepts_connections(family: int, sockaddr: Any) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            return probe.connect_ex(sockaddr) == 0
        except OSError:  # a timeout
            return False


def stop_on_spawner(server_id: int, *, hand_off: bool = False) -> None:
    """Stop the process and release the route and credentials.

    HAND_OFF (the stop task): a server that is not gone within STOP_HOLD
    seconds (a pod terminating, up to its grace period) is finished by this
    process's pending stops (servers/services/stopping.py), not in the task's
    thread: 100 pods stopping at once held all 32 of a worker's threads, so
    stops went in waves and no start could run meanwhile. Otherwise (a
    user's deletion, reconcile) this returns once the server is gone."""
    server = Server.objects.select_related("user").filter(pk=server_id).first()
    if server is None or server.state != State.STOPPING:
        return
    began = time.monotonic()
    if server.spawner_state:
        try:
            going = get_spawner().begin_stop(server.spawner_state, grace=settings.HUB_STOP_GRACE)
            if going is not None and not going.wait(STOP_HOLD if hand_off else None):
                stopping.pending().add(server.pk, going, lambda: finish_stop(server, began))
                return
        except Exception:
            metrics.SERVER_STOP_DURATION_SECONDS.labels(status="failure").observe(
                time.monotonic() - began
            )
            raise
    finish_stop(server, began)


STOP_HOLD = 1.0  # seconds a stop task waits for its server in its own thread


def finish_stop(server: Server, began: float) -> None:
    """The server is gone: stopped, its credentials revoked, a named server
    marked for removal removed. Once only (compare-and-set on STOPPING), and
    in one transaction, as mark_failed: whoever sees the server stopped sees
    its event and its credentials gone."""
    with transaction.atomic():
        stopped = Server.objects.filter(pk=server.pk, state=State.STOPPING).update(
            state=State.STOPPED, url="", spawner_state={}, changed=timezone.now()
        )
        if not stopped:
            return
        ServerEvent.objects.create(server=server, kind=ServerEvent.Kind.STOPPED, message="Stopped")
        revoke_credentials(server)
        if server.name:
            Server.objects.filter(pk=server.pk, state=State.STOPPED, remove_on_stop=True).delete()
    metrics.SERVER_STOP_DURATION_SECONDS.labels(status="success").observe(time.monotonic() - began)


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
    username, storage = user.username, user.storage_name
    user.delete()
    for action in get_spawner().forget_user(username, storage or username):
        log.warning("%s (deleted by %s)", action, by)
