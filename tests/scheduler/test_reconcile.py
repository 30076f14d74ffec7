"""Reconcile's plan (scheduler/reconcile.py): pure, nothing running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.reconcile import (
    FailStart,
    FinishStop,
    MarkDead,
    Process,
    Requeue,
    Row,
    StopOrphan,
    Timing,
    plan,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMING = Timing(start_timeout=120, stop_grace=10, lease=10, unclaimed=10, margin=5)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def row(**fields) -> Row:
    values = {
        "server_id": 1,
        "username": "alice",
        "name": "",
        "state": "running",
        "requested_at": ago(60),
        "changed": ago(50),
        "attempt": "a1",
        "heartbeat": ago(50),
        "alive": True,
    }
    values.update(fields)
    return Row(**values)


def process(**fields) -> Process:
    values = {"username": "alice", "name": "", "attempt": "a1", "state": {"pid": 10}}
    values.update(fields)
    return Process(**values)


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        (row(), None),
        (row(alive=False), MarkDead),
        (row(alive=None), None),  # nothing to poll: left alone
        # starting, owned by a live attempt renewing its lease
        (row(state="starting", heartbeat=ago(2)), None),
        # its worker died: the lease ran out, the start is enqueued again
        (row(state="starting", heartbeat=ago(11)), Requeue),
        # its worker is known dead (same host): no need to wait for the lease
        (row(state="starting", heartbeat=ago(1), worker_alive=False), Requeue),
        (row(state="starting", heartbeat=ago(1), worker_alive=None), None),
        # never claimed by any task: enqueued again after a while
        (row(state="starting", attempt="", heartbeat=None, requested_at=ago(5)), None),
        (row(state="starting", attempt="", heartbeat=None, requested_at=ago(11)), Requeue),
        # enqueued again a moment ago (heartbeat = last enqueue): not again yet
        (row(state="starting", attempt="", heartbeat=ago(3), requested_at=ago(60)), None),
        # past the start timeout: failed and cleaned up, however alive
        (row(state="starting", heartbeat=ago(1), requested_at=ago(126)), FailStart),
        (row(state="starting", requested_at=None), FailStart),
        (row(state="stopping", changed=ago(14)), None),
        (row(state="stopping", changed=ago(16)), FinishStop),
    ],
)
def test_row_repairs(db, expected):
    actions = plan([db], [], NOW, TIMING)
    if expected is None:
        assert actions == []
    else:
        assert [type(a) for a in actions] == [expected]
        assert actions[0].server_id == 1 and actions[0].reason


@pytest.mark.parametrize(
    ("rows", "proc", "orphan"),
    [
        ([row()], process(), False),
        ([], process(), True),  # nobody in the database knows it
        ([row(state="stopped")], process(), True),
        ([row(state="failed")], process(), True),
        ([row(name="other")], process(), True),
        # a row taken over by a newer attempt: the old attempt's process goes
        ([row(state="starting", attempt="a2", heartbeat=ago(1))], process(), True),
        # a row in the middle of its first claim (attempt not recorded yet) keeps it
        (
            [row(state="starting", attempt="", heartbeat=None, requested_at=ago(1))],
            process(),
            False,
        ),
        ([row(state="stopping", changed=ago(1))], process(), False),
    ],
)
def test_processes_nobody_accounts_for_are_stopped(rows, proc, orphan):
    actions = [a for a in plan(rows, [proc], NOW, TIMING) if isinstance(a, StopOrphan)]
    assert bool(actions) is orphan
    if orphan:
        assert actions[0].process == proc and actions[0].reason


def test_one_pass_plans_every_repair_rows_first():
    rows = [
        row(server_id=1, username="a", alive=False),
        row(server_id=2, username="b", state="starting", heartbeat=ago(30)),
        row(server_id=3, username="c"),
    ]
    procs = [process(username="c"), process(username="ghost")]
    actions = plan(rows, procs, NOW, TIMING)
    assert [type(a) for a in actions] == [MarkDead, Requeue, StopOrphan]
    assert actions[2].process.username == "ghost"
