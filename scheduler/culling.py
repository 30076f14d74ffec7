"""Which servers and users the idle culler removes, given what is known of them.

jupyterhub-idle-culler's policy, as a pure function over values so the
decision can be table-tested and the beat task stays a thin shell:

- a server is culled when it has been inactive for at least the timeout
  (inactivity counted from its start when it never reported activity), or,
  with a max age, when it is older than that, however active;
- a pending server (starting or stopping) is never culled;
- a named server is removed as well as stopped when the policy says so;
- with user culling, a user with no active server who has been inactive for
  the timeout (or exists for longer than the max age) is deleted; admins
  only when admin culling is on (the culler's `--cull-admin-users`, default on;
  unlike the culler, the admin exception also holds for max age).

What differs from the external culler is what "inactive" sees. The culler
only has the hub's `last_activity`, refreshed every few minutes; here it is
the newest of every activity source: the router's traffic counts (HTTP and
WebSocket frames, reported every 5 s), the server's own activity reports, and
the server's kernels and terminals, read from its `/api/kernels` and
`/api/terminals`. A kernel busy on a long computation with no traffic is not
idle: `Workload.busy` says so and nothing is culled for inactivity while it
holds. A profile may set its own timeout (0: its servers are never culled for
inactivity; max age still applies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class CullPolicy:
    timeout: float | None = None  # seconds idle; None: no idle culling
    every: float = 60.0
    max_age: float = 0.0  # seconds since start; 0: off
    cull_users: bool = False
    cull_admins: bool = True
    remove_named_servers: bool = False
    concurrency: int = 10
    count_terminals: bool = True  # terminal activity keeps a server alive

    @property
    def enabled(self) -> bool:
        """False: only profiles with their own timeout can cull anything."""
        return self.timeout is not None or self.max_age > 0


@dataclass(frozen=True)
class Workload:
    """What a server said about its kernels and terminals (None fields: none)."""

    busy: bool = False  # a kernel is busy or starting right now
    kernel_activity: datetime | None = None
    terminal_activity: datetime | None = None


@dataclass(frozen=True)
class ServerView:
    server_id: int
    username: str
    name: str  # "" is the default server
    state: str  # servers.models.Server.State values
    started: datetime | None
    last_activity: datetime | None  # router traffic and the server's own reports
    profile_timeout: float | None = None  # the profile's cull_timeout; None: the policy's
    workload: Workload | None = None  # None: not asked, or the server did not answer


@dataclass(frozen=True)
class UserView:
    user_id: int
    username: str
    is_admin: bool
    created: datetime | None
    last_activity: datetime | None
    active_servers: int  # servers not stopped or failed


@dataclass(frozen=True)
class StopServer:
    server_id: int
    remove: bool
    reason: str


@dataclass(frozen=True)
class DeleteUser:
    user_id: int
    reason: str


Action = StopServer | DeleteUser


def _newest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def last_active(server: ServerView, policy: CullPolicy) -> datetime | None:
    """The newest activity from every source, or None if there was none."""
    workload = server.workload or Workload()
    terminals = workload.terminal_activity if policy.count_terminals else None
    return _newest(server.last_activity, workload.kernel_activity, terminals)


def idle_timeout(server: ServerView, policy: CullPolicy) -> float | None:
    """The timeout that applies to SERVER: its profile's, else the policy's."""
    if server.profile_timeout is not None:
        return server.profile_timeout or None  # 0: never for inactivity
    return policy.timeout


def _format(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


def server_verdict(server: ServerView, now: datetime, policy: CullPolicy) -> str | None:
    """The reason SERVER is culled at NOW, or None if it stays."""
    if server.state != "running" or server.started is None:
        return None
    age = (now - server.started).total_seconds()
    timeout = idle_timeout(server, policy)
    busy = server.workload is not None and server.workload.busy
    if timeout is not None and not busy:
        since = last_active(server, policy) or server.started
        inactive = (now - since).total_seconds()
        if inactive >= timeout:
            return f"idle for {_format(inactive)} (timeout {_format(timeout)})"
    if policy.max_age and age >= policy.max_age:
        return f"running for {_format(age)} (max age {_format(policy.max_age)})"
    return None


def needs_workload(server: ServerView, now: datetime, policy: CullPolicy) -> bool:
    """True when the hub's own activity alone would cull SERVER for inactivity:
    only those servers are asked about their kernels (the rest are active
    anyway, and asking costs a request each)."""
    verdict = server_verdict(replace(server, workload=None), now, policy)
    return verdict is not None and verdict.startswith("idle")


def user_verdict(user: UserView, now: datetime, policy: CullPolicy) -> str | None:
    if not policy.cull_users or user.active_servers:
        return None
    if user.is_admin and not policy.cull_admins:
        return None
    age = (now - user.created).total_seconds() if user.created else None
    since = user.last_activity or user.created
    if policy.timeout is not None and since is not None:
        inactive = (now - since).total_seconds()
        if inactive >= policy.timeout:
            return f"user inactive for {_format(inactive)} with no server"
    if policy.max_age and age is not None and age >= policy.max_age:
        return f"user exists for {_format(age)} (max age {_format(policy.max_age)})"
    return None


def decide(
    servers: Iterable[ServerView],
    users: Sequence[UserView],
    now: datetime,
    policy: CullPolicy,
) -> list[Action]:
    """Everything to cull at NOW: server stops first, then user deletions.

    A user whose server is culled in this pass is not deleted in it: the stop
    is asynchronous, and the next pass finds the user with no server (the
    external culler does the same when a stop answers 202)."""
    actions: list[Action] = []
    for server in servers:
        reason = server_verdict(server, now, policy)
        if reason is not None:
            remove = policy.remove_named_servers and bool(server.name)
            actions.append(StopServer(server.server_id, remove=remove, reason=reason))
    for user in users:
        reason = user_verdict(user, now, policy)
        if reason is not None:
            actions.append(DeleteUser(user.user_id, reason=reason))
    return actions
