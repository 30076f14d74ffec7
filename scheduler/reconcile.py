"""What to repair so the database, the spawner and the routers agree.

Pure: takes what the database says (rows), what the spawner sees running
(processes or pods carrying our marks, `Spawner.list_running`) and the time,
and returns actions; scheduler/services.py applies them. The routers need no
action of their own: they pull the route table from the database, so a server
that leaves `running` loses its route on their next poll.

The rules, JupyterHub's `init_spawners` and `check_routes` plus what a
database-owned state machine adds:

- a running server whose process is gone is marked failed (route gone with it);
- a start whose worker is dead (same host: known at once) or stopped renewing
  its lease (killed, OOM, host gone) is enqueued again: the next spawn task
  takes it over and cleans up what the dead one left; one requested long ago
  that no task ever claimed (a crash between commit and enqueue) is enqueued
  again too;
- a start still unfinished past the start timeout is failed and cleaned up;
- a stop older than the grace period (its worker died) is finished;
- a process carrying our marks that no active row accounts for (no row, a row
  stopped or failed, or a row now owned by another spawn attempt) is stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Row:
    server_id: int
    username: str
    name: str
    state: str  # servers.models.Server.State values
    requested_at: datetime | None
    changed: datetime
    attempt: str = ""  # the spawn attempt that owns the row ("" before any claim)
    heartbeat: datetime | None = None  # last renewal of that attempt's lease, or last enqueue
    alive: bool | None = None  # the spawner's poll of its state; None: nothing to poll
    worker_alive: bool | None = None  # the attempt's worker process; None: cannot tell


@dataclass(frozen=True)
class Process:
    """A server the spawner found running with our marks."""

    username: str
    name: str
    attempt: str
    state: dict  # what Spawner.stop needs


@dataclass(frozen=True)
class Timing:
    start_timeout: float
    stop_grace: float
    lease: float  # a spawn attempt whose heartbeat is older has lost its worker
    unclaimed: float = 10.0  # a start no task claimed for this long is enqueued again
    margin: float = 5.0


@dataclass(frozen=True)
class MarkDead:
    server_id: int
    reason: str


@dataclass(frozen=True)
class FailStart:
    server_id: int
    reason: str


@dataclass(frozen=True)
class Requeue:
    server_id: int
    reason: str


@dataclass(frozen=True)
class FinishStop:
    server_id: int
    reason: str


@dataclass(frozen=True)
class StopOrphan:
    process: Process
    reason: str


Action = MarkDead | FailStart | Requeue | FinishStop | StopOrphan


def _older(when: datetime | None, now: datetime, seconds: float) -> bool:
    return when is None or now - when > timedelta(seconds=seconds)


def plan_row(row: Row, now: datetime, timing: Timing) -> Action | None:
    if row.state == "running" and row.alive is False:
        return MarkDead(row.server_id, "its process is gone")
    if row.state == "starting":
        if _older(row.requested_at, now, timing.start_timeout + timing.margin):
            return FailStart(
                row.server_id,
                f"The start did not finish within {timing.start_timeout:.0f} seconds "
                "(its worker may have died).",
            )
        if row.attempt and row.worker_alive is False:
            return Requeue(row.server_id, f"the worker of spawn attempt {row.attempt} is dead")
        if row.attempt and _older(row.heartbeat, now, timing.lease):
            return Requeue(row.server_id, f"its spawn attempt {row.attempt} lost its worker")
        # unclaimed: `heartbeat` is when it was last enqueued (None: only by request_start)
        if not row.attempt and _older(row.heartbeat or row.requested_at, now, timing.unclaimed):
            return Requeue(row.server_id, "no worker claimed the start")
    if row.state == "stopping" and _older(row.changed, now, timing.stop_grace + timing.margin):
        return FinishStop(row.server_id, "its stop did not finish (its worker may have died)")
    return None


def orphan_reason(process: Process, rows: dict[tuple[str, str], Row]) -> str | None:
    row = rows.get((process.username, process.name))
    if row is None or row.state in ("stopped", "failed"):
        return "no active server in the database"
    if row.attempt and process.attempt != row.attempt:
        return f"left by spawn attempt {process.attempt or '?'}; the server is now {row.attempt}"
    return None


def plan(
    rows: Iterable[Row], processes: Iterable[Process], now: datetime, timing: Timing
) -> list[Action]:
    """Every repair needed at NOW, rows first, then orphans. ROWS are the
    active servers (starting, running, stopping): the cost is O(active)."""
    by_key: dict[tuple[str, str], Row] = {}
    actions: list[Action] = []
    for row in rows:
        by_key[(row.username, row.name)] = row
        action = plan_row(row, now, timing)
        if action is not None:
            actions.append(action)
    for process in processes:
        reason = orphan_reason(process, by_key)
        if reason is not None:
            actions.append(StopOrphan(process, reason))
    return actions
