"""The idle culler's pass: the decisions come from the pure
scheduler/culling.py; this module gathers their inputs (every running server
with the hub's activity, and the kernels and terminals of those that look
idle, asked of the servers themselves) and applies them through
request_stop's compare-and-set claim, so a second beat started by mistake
(or two overlapping passes) never culls a server twice: the second claim
finds it stopping already. Each cull is a server event (kind `culled`) with
its reason, shown in the admin."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from scheduler import culling, workload
from servers import metrics
from servers.models import Profile, Server, ServerEvent
from servers.services.claims import request_stop
from servers.services.credentials import unseal
from servers.services.launch import delete_user

log = logging.getLogger(__name__)
State = Server.State
ACTIVE = [State.STARTING, State.RUNNING, State.STOPPING]


def cull_policy() -> culling.CullPolicy:
    return culling.CullPolicy(
        timeout=settings.HUB_CULL_TIMEOUT,
        every=settings.HUB_CULL_EVERY,
        max_age=settings.HUB_CULL_MAX_AGE,
        cull_users=settings.HUB_CULL_USERS,
        cull_admins=settings.HUB_CULL_ADMINS,
        remove_named_servers=settings.HUB_CULL_REMOVE_NAMED_SERVERS,
        concurrency=settings.HUB_CULL_CONCURRENCY,
        count_terminals=settings.HUB_CULL_TERMINALS,
    )


@dataclass
class CullReport:
    running: int = 0  # servers looked at
    asked: int = 0  # of which asked about their kernels
    stopped: list[str] = field(default_factory=list)
    deleted_users: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _server_view(server: Server) -> culling.ServerView:
    profile_timeout = server.profile.cull_timeout if server.profile_id else None
    return culling.ServerView(
        server_id=server.pk,
        username=server.user.username,
        name=server.name,
        state=server.state,
        started=server.started,
        last_activity=server.last_activity,
        profile_timeout=None if profile_timeout is None else float(profile_timeout),
    )


def _ask_workloads(
    servers: dict[int, Server], ids: list[int], policy: culling.CullPolicy
) -> dict[int, culling.Workload | None]:
    """Kernels and terminals of the servers IDS, HUB_CULL_CONCURRENCY at a time."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=policy.concurrency)
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def ask(server_id: int) -> tuple[int, culling.Workload | None]:
        server = servers[server_id]
        token = unseal(server.probe_token)
        if token is None or not server.url:
            return server_id, None
        found = workload.read_workload(
            server.url, server.prefix, token, session=session, terminals=policy.count_terminals
        )
        return server_id, found

    if not ids:
        return {}
    with ThreadPoolExecutor(max_workers=policy.concurrency) as pool:
        return dict(pool.map(ask, ids))


def _user_views(now: datetime, policy: culling.CullPolicy) -> list[culling.UserView]:
    """Users with no active server who might be culled (the database filters
    out the recently active, so the cost follows the culled, not all users)."""
    if not policy.cull_users:
        return []
    users = User.objects.annotate(active=Count("servers", filter=Q(servers__state__in=ACTIVE)))
    users = users.filter(active=0)
    if not policy.cull_admins:
        users = users.filter(is_superuser=False)
    recent = Q()
    if policy.timeout is not None:
        cutoff = now - timedelta(seconds=policy.timeout)
        recent = Q(last_activity__lt=cutoff) | Q(last_activity__isnull=True, created__lt=cutoff)
    if policy.max_age:
        old = Q(created__lt=now - timedelta(seconds=policy.max_age))
        recent = (recent | old) if policy.timeout is not None else old
    if policy.timeout is None and not policy.max_age:
        return []
    return [
        culling.UserView(
            user_id=u.pk,
            username=u.username,
            is_admin=u.is_superuser,
            created=u.created,
            last_activity=u.last_activity,
            active_servers=u.active,
        )
        for u in users.filter(recent)
    ]


def cull_idle(
    *, now: datetime | None = None, policy: culling.CullPolicy | None = None
) -> CullReport:
    """One culling pass; what it stopped and deleted, with reasons, is in the
    report and in each server's events (kind `culled`)."""
    began = time.monotonic()
    policy = policy or cull_policy()
    now = now or timezone.now()
    report = CullReport()
    if not policy.enabled and not Profile.objects.filter(cull_timeout__isnull=False).exists():
        return report
    running = {
        s.pk: s
        for s in Server.objects.filter(state=State.RUNNING).select_related("user", "profile")
    }
    views = [_server_view(s) for s in running.values()]
    report.running = len(views)
    ask = [v.server_id for v in views if culling.needs_workload(v, now, policy)]
    report.asked = len(ask)
    found = _ask_workloads(running, ask, policy)
    views = [replace(v, workload=found.get(v.server_id)) for v in views]
    for action in culling.decide(views, _user_views(now, policy), now, policy):
        if isinstance(action, culling.StopServer):
            server = running[action.server_id]
            if _cull_server(server, action):
                report.stopped.append(f"{server}: {action.reason}")
        elif _cull_user(action):
            report.deleted_users.append(f"user {action.user_id}: {action.reason}")
    report.seconds = time.monotonic() - began
    for line in report.stopped + report.deleted_users:
        log.info("culled %s", line)
    return report


def _cull_server(server: Server, action: culling.StopServer) -> bool:
    """The claim and its `culled` event commit together, and only then is the
    stop sent: a stop that finished first removed a named server under the
    event still to be written (an IntegrityError, and a cull without reason)."""
    with transaction.atomic():
        if not request_stop(server, by="culler", remove=action.remove):
            return False  # no longer running: stopped meanwhile, or another pass culled it
        ServerEvent.objects.create(
            server=server,
            kind=ServerEvent.Kind.CULLED,
            message=f"Culled: {action.reason}",
            actor="culler",
        )
    metrics.CULLS.labels(kind="server").inc()
    return True


def _cull_user(action: culling.DeleteUser) -> bool:
    """Delete the user only if it still has no active server (it may have
    started one since the pass looked)."""
    user = User.objects.filter(pk=action.user_id).exclude(servers__state__in=ACTIVE).first()
    if user is None:
        return False
    log.info("culling user %s: %s", user.username, action.reason)
    delete_user(user, by="culler")
    metrics.CULLS.labels(kind="user").inc()
    return True
