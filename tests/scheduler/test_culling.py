"""The culler's decisions (scheduler/culling.py): pure, nothing running."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.culling import (
    CullPolicy,
    DeleteUser,
    ServerView,
    StopServer,
    UserView,
    Workload,
    decide,
    needs_workload,
    server_verdict,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def server(**fields) -> ServerView:
    values = {
        "server_id": 1,
        "username": "alice",
        "name": "",
        "state": "running",
        "started": ago(7200),
        "last_activity": ago(10),
    }
    values.update(fields)
    return ServerView(**values)


def user(**fields) -> UserView:
    values = {
        "user_id": 7,
        "username": "alice",
        "is_admin": False,
        "created": ago(86400),
        "last_activity": ago(7200),
        "active_servers": 0,
    }
    values.update(fields)
    return UserView(**values)


IDLE = CullPolicy(timeout=600)


@pytest.mark.parametrize(
    ("view", "policy", "culled"),
    [
        # the hub's own activity (router traffic, server reports)
        (server(last_activity=ago(599)), IDLE, None),
        (server(last_activity=ago(600)), IDLE, "idle for 0:10:00 (timeout 0:10:00)"),
        # never reported activity: inactive since it started
        (server(last_activity=None, started=ago(900)), IDLE, "idle for 0:15:00"),
        (server(last_activity=None, started=ago(30)), IDLE, None),
        # a kernel computing with no traffic is not idle, however long
        (server(last_activity=ago(9000), workload=Workload(busy=True)), IDLE, None),
        # a kernel that produced output recently is activity
        (server(last_activity=ago(9000), workload=Workload(kernel_activity=ago(5))), IDLE, None),
        (
            server(last_activity=ago(9000), workload=Workload(kernel_activity=ago(700))),
            IDLE,
            "idle for 0:11:40",
        ),
        # terminals count unless the operator says they do not
        (server(last_activity=ago(9000), workload=Workload(terminal_activity=ago(5))), IDLE, None),
        (
            server(last_activity=ago(9000), workload=Workload(terminal_activity=ago(5))),
            CullPolicy(timeout=600, count_terminals=False),
            "idle for 2:30:00",
        ),
        # pending servers are never culled
        (server(state="starting", last_activity=ago(9000)), IDLE, None),
        (server(state="stopping", last_activity=ago(9000)), IDLE, None),
        (server(state="stopped", last_activity=ago(9000)), IDLE, None),
        # culling off
        (server(last_activity=ago(9000)), CullPolicy(), None),
        # max age culls active servers, busy ones too
        (
            server(started=ago(3600), workload=Workload(busy=True)),
            CullPolicy(max_age=3600),
            "running for 1:00:00 (max age 1:00:00)",
        ),
        (server(started=ago(3599)), CullPolicy(max_age=3600), None),
        # profiles' own timeouts: longer, shorter, never (0), and on with culling off
        (server(last_activity=ago(900), profile_timeout=3600), IDLE, None),
        (server(last_activity=ago(120), profile_timeout=60), IDLE, "idle for 0:02:00"),
        (server(last_activity=ago(90000), profile_timeout=0), IDLE, None),
        (server(last_activity=ago(120), profile_timeout=60), CullPolicy(), "idle for 0:02:00"),
        (
            server(last_activity=ago(90000), profile_timeout=0, started=ago(7200)),
            CullPolicy(timeout=600, max_age=3600),
            "running for 2:00:00",
        ),
    ],
)
def test_server_verdict(view, policy, culled):
    verdict = server_verdict(view, NOW, policy)
    if culled is None:
        assert verdict is None
    else:
        assert verdict is not None and verdict.startswith(culled)


@pytest.mark.parametrize(
    ("view", "policy", "reason"),
    [
        (user(), CullPolicy(timeout=600), None),  # user culling off
        (user(), CullPolicy(timeout=600, cull_users=True), "user inactive for 2:00:00"),
        (user(active_servers=1), CullPolicy(timeout=600, cull_users=True), None),
        (user(last_activity=ago(10)), CullPolicy(timeout=600, cull_users=True), None),
        # never active: counted from creation
        (user(last_activity=None, created=ago(60)), CullPolicy(timeout=600, cull_users=True), None),
        (user(is_admin=True), CullPolicy(timeout=600, cull_users=True), "user inactive"),
        (user(is_admin=True), CullPolicy(timeout=600, cull_users=True, cull_admins=False), None),
        (
            user(last_activity=ago(10)),
            CullPolicy(max_age=3600, cull_users=True),
            "user exists for 1 day, 0:00:00",
        ),
    ],
)
def test_user_verdict(view, policy, reason):
    actions = decide([], [view], NOW, policy)
    if reason is None:
        assert actions == []
    else:
        assert len(actions) == 1 and isinstance(actions[0], DeleteUser)
        assert actions[0].user_id == 7 and actions[0].reason.startswith(reason)


def test_named_servers_are_removed_only_when_the_policy_says_so():
    views = [server(server_id=1), server(server_id=2, name="big")]
    old = [replace_activity(v, ago(900)) for v in views]
    kept = decide(old, [], NOW, CullPolicy(timeout=600))
    removed = decide(old, [], NOW, CullPolicy(timeout=600, remove_named_servers=True))
    assert [(a.server_id, a.remove) for a in kept] == [(1, False), (2, False)]
    assert [(a.server_id, a.remove) for a in removed] == [(1, False), (2, True)]
    assert all(isinstance(a, StopServer) for a in removed)


def replace_activity(view: ServerView, when: datetime) -> ServerView:
    return replace(view, last_activity=when)


def test_servers_come_before_users_and_a_user_with_a_culled_server_waits_a_pass():
    policy = CullPolicy(timeout=600, cull_users=True)
    actions = decide(
        [server(last_activity=ago(900))],
        [user(user_id=7, active_servers=1), user(user_id=8, username="bob")],
        NOW,
        policy,
    )
    assert actions == [
        StopServer(1, remove=False, reason="idle for 0:15:00 (timeout 0:10:00)"),
        DeleteUser(8, reason="user inactive for 2:00:00 with no server"),
    ]


@pytest.mark.parametrize(
    ("view", "asked"),
    [
        (server(last_activity=ago(10)), False),  # active by the hub's own sources
        (server(last_activity=ago(900)), True),  # looks idle: ask its kernels
        (server(last_activity=ago(900), workload=Workload(busy=True)), True),
        (server(state="starting", last_activity=ago(900)), False),
    ],
)
def test_only_servers_that_look_idle_are_asked_about_their_kernels(view, asked):
    assert needs_workload(view, NOW, CullPolicy(timeout=600)) is asked


def test_max_age_alone_needs_no_kernel_query():
    assert not needs_workload(server(started=ago(9000)), NOW, CullPolicy(max_age=3600))
