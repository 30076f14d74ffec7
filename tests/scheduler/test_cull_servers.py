"""The idle culler on the real platform: real jupyter servers and kernels,
the real router counting WebSocket frames, a real Celery worker and beat.

Short timeouts (seconds) come from the `settings` fixture; every pass is the
production code path (servers.services.cull_idle, or the beat task)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import websockets
from django.utils import timezone

from accounts.models import User
from hubsite.celery import app as celery_app
from scheduler.schedule import beat_schedule
from servers import services
from servers.models import Server, ServerEvent
from servers.spawners import get_spawner
from servers.spawners.zygote import process_start_time
from tests.factories import ServerFactory
from tests.live import launch_router, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
State = Server.State


@pytest.fixture
def short_culling(settings):
    settings.HUB_CULL_TIMEOUT = 2.0
    settings.HUB_CULL_EVERY = 1.0
    settings.HUB_CULL_MAX_AGE = 0.0
    return settings


@contextmanager
def beat(tmp_path: Path) -> Iterator[None]:
    """Celery beat, embedded in a thread, with the schedule built from the
    current settings (HUB_CULL_EVERY)."""
    from celery.beat import EmbeddedService

    saved = celery_app.conf.beat_schedule
    celery_app.conf.beat_schedule = beat_schedule()
    service = EmbeddedService(celery_app, schedule_filename=str(tmp_path / "beat-schedule"))
    service.start()
    try:
        yield
    finally:
        service.stop()
        celery_app.conf.beat_schedule = saved


def culled_events(server: Server) -> list[ServerEvent]:
    return list(ServerEvent.objects.filter(server_id=server.pk, kind=ServerEvent.Kind.CULLED))


def passes_for(seconds: float, every: float = 0.5) -> list[services.CullReport]:
    """Cull passes every EVERY seconds for SECONDS (what beat would run)."""
    reports = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reports.append(services.cull_idle())
        time.sleep(every)
    return reports


def test_idle_server_is_stopped_within_timeout_plus_interval(
    alice, start_server, short_culling, tmp_path
):
    server = start_server(alice)
    idle_since = Server.objects.get(pk=server.pk).last_activity
    with beat(tmp_path):
        wait_for(
            lambda: Server.objects.get(pk=server.pk).state == State.STOPPED,
            timeout=60,
            what="the idle server to be culled",
        )
    event = culled_events(server)[0]
    took = (event.created - idle_since).total_seconds()
    print(f"\nidle server culled {took:.2f}s after its last activity (timeout 2 s, every 1 s)")
    assert event.message.startswith("Culled: idle for") and event.actor == "culler"
    assert get_spawner().poll(server.spawner_state) == 0


def _message(msg_type: str, content: dict, session: str) -> str:
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "t"}
    header.update(session=session, version="5.3", date="")
    return json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
    )


def start_kernel(base: str, token: str) -> str:
    response = requests.post(
        f"{base}api/kernels", headers={"Authorization": f"token {token}"}, json={}, timeout=60
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def kernel_state(base: str, token: str, kernel: str) -> str:
    response = requests.get(
        f"{base}api/kernels/{kernel}", headers={"Authorization": f"token {token}"}, timeout=10
    )
    return response.json()["execution_state"]


async def _send_code(ws_url: str, token: str, code: str) -> None:
    """Send CODE to run and hang up at once: the kernel computes with no
    connection and no traffic at all."""
    headers = {"Authorization": f"token {token}"}
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        content = {"code": code, "silent": False, "store_history": False}
        content.update(user_expressions={}, allow_stdin=False)
        await ws.send(_message("execute_request", content, uuid.uuid4().hex))


def test_kernel_computing_longer_than_the_timeout_without_traffic_is_not_culled(
    alice, token_for, start_server, short_culling
):
    server = start_server(alice)
    token = token_for(alice)
    base = server.url + server.prefix  # straight to the server: the router sees nothing
    kernel = start_kernel(base, token)
    ws = base.replace("http", "ws", 1) + f"api/kernels/{kernel}/channels"
    asyncio.run(_send_code(ws, token, "import time; time.sleep(6)"))
    wait_for(lambda: kernel_state(base, token, kernel) == "busy", timeout=30, what="busy")
    # the hub's own activity alone would cull it now: the server is asked about its kernels
    reports = passes_for(4.0)
    assert all(r.stopped == [] for r in reports)
    assert sum(r.asked for r in reports) >= 3
    assert Server.objects.get(pk=server.pk).state == State.RUNNING
    assert kernel_state(base, token, kernel) == "busy"
    # computation over: idle from then on, culled once the timeout has passed
    wait_for(lambda: kernel_state(base, token, kernel) == "idle", timeout=30, what="idle")
    wait_for(lambda: services.cull_idle().stopped, timeout=30, what="the culler to stop it at last")
    assert culled_events(server)[0].message.startswith("Culled: idle for")


async def _chat(ws_url: str, token: str, seconds: float) -> int:
    """Talk to the kernel over its WebSocket every 0.3 s for SECONDS."""
    headers = {"Authorization": f"token {token}"}
    session = uuid.uuid4().hex
    replies = 0
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await ws.send(_message("kernel_info_request", {}, session))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                if reply["msg_type"] == "kernel_info_reply":
                    replies += 1
                    break
            await asyncio.sleep(0.3)
    return replies


def test_an_active_websocket_session_through_the_router_is_not_culled(
    alice, token_for, start_server, short_culling, live_hub, settings
):
    server = start_server(alice)
    token = token_for(alice)
    router = launch_router(
        live_hub.url,
        settings.HUB_ROUTER_TOKEN,
        extra=["--activity-interval", "0.5"],
        hub_wakes=True,
    )
    try:
        base = f"{router.url}{server.prefix}"
        kernel = start_kernel(base, token)
        ws = base.replace("http", "ws", 1) + f"api/kernels/{kernel}/channels"
        outcome: dict[str, object] = {}
        chat = threading.Thread(target=lambda: outcome.update(n=asyncio.run(_chat(ws, token, 5))))
        chat.start()
        reports = passes_for(5.0)
        chat.join()
    finally:
        router.stop()
    assert outcome["n"] > 5
    assert all(r.stopped == [] for r in reports)
    assert Server.objects.get(pk=server.pk).state == State.RUNNING
    # the router reported the WebSocket traffic as the server's activity
    assert timezone.now() - Server.objects.get(pk=server.pk).last_activity < timedelta(seconds=3)


# --- policy on the real task queue, with servers that have no process --------
# These rows stand in for servers (no process: their stop only moves the row),
# since what is tested is which servers and users the culler picks.


def running_row(user: User, name: str = "", *, started_ago: float, idle_for: float) -> Server:
    now = timezone.now()
    return ServerFactory(
        user=user,
        name=name,
        state=State.RUNNING,
        url="",
        started=now - timedelta(seconds=started_ago),
        last_activity=now - timedelta(seconds=idle_for),
    )


def wait_stopped(*servers: Server) -> None:
    ids = [s.pk for s in servers]
    wait_for(
        lambda: not Server.objects.filter(pk__in=ids).exclude(state=State.STOPPED).exists(),
        timeout=30,
        what="the culled servers to stop",
    )


def test_max_age_culls_a_busy_server(alice, bob, settings, celery_live_worker):
    settings.HUB_CULL_TIMEOUT = None
    settings.HUB_CULL_MAX_AGE = 60.0
    old = running_row(alice, started_ago=61, idle_for=0)
    young = running_row(bob, started_ago=30, idle_for=0)
    report = services.cull_idle()
    assert report.stopped == ["alice/: running for 0:01:01 (max age 0:01:00)"]
    wait_stopped(old)
    assert Server.objects.get(pk=young.pk).state == State.RUNNING


def test_users_without_servers_are_culled_when_asked(alice, bob, carol, admin, settings, live_hub):
    settings.HUB_CULL_TIMEOUT = 600.0
    settings.HUB_CULL_USERS = True
    settings.HUB_CULL_ADMINS = False
    long_ago = timezone.now() - timedelta(hours=2)
    User.objects.filter(pk__in=[alice.pk, admin.pk]).update(last_activity=long_ago)
    User.objects.filter(pk=bob.pk).update(last_activity=timezone.now())
    User.objects.filter(pk=carol.pk).update(last_activity=long_ago)
    running_row(carol, started_ago=10, idle_for=0)  # carol still has a server
    report = services.cull_idle()
    assert len(report.deleted_users) == 1
    remaining = set(User.objects.values_list("username", flat=True))
    assert remaining == {"bob", "carol", "admin"}
    settings.HUB_CULL_ADMINS = True
    services.cull_idle()
    assert set(User.objects.values_list("username", flat=True)) == {"bob", "carol"}


def test_named_servers_are_removed_when_the_policy_says_so(alice, settings, celery_live_worker):
    settings.HUB_CULL_TIMEOUT = 60.0
    settings.HUB_CULL_REMOVE_NAMED_SERVERS = True
    default = running_row(alice, started_ago=600, idle_for=120)
    named = running_row(alice, "big", started_ago=600, idle_for=120)
    assert len(services.cull_idle().stopped) == 2
    wait_for(
        lambda: not Server.objects.filter(pk=named.pk).exists(),
        timeout=30,
        what="the named server to be removed",
    )
    wait_stopped(default)  # the default server is stopped, never removed


def test_a_named_server_removed_at_once_by_its_stop_keeps_the_cull_whole(
    alice, settings, monkeypatch
):
    """A worker so quick that the stop is done, and the named server removed,
    the moment its claim commits: the culled event must already be written
    (it was written after the claim, and then raised an IntegrityError on the
    removed server). Here the task is run as it is sent, in this thread."""
    from servers.services import claims, launch

    settings.HUB_CULL_TIMEOUT = 60.0
    settings.HUB_CULL_REMOVE_NAMED_SERVERS = True
    named = running_row(alice, "big", started_ago=600, idle_for=120)
    sent: list[tuple[str, int]] = []

    def run_at_once(name: str, args: tuple[int], **_: object) -> None:
        sent.append((name, args[0]))
        assert ServerEvent.objects.filter(server_id=args[0], kind=ServerEvent.Kind.CULLED).exists()
        launch.stop_on_spawner(args[0])

    monkeypatch.setattr(claims.app, "send_task", run_at_once)
    report = services.cull_idle()
    assert len(report.stopped) == 1 and report.stopped[0].startswith(f"{named}: ")
    assert sent == [(claims.STOP_TASK, named.pk)]
    assert not Server.objects.filter(pk=named.pk).exists()


def test_two_passes_at_once_cull_each_server_once(alice, bob, settings, celery_live_worker):
    """A second beat started by mistake: both passes decide, one claim wins."""
    settings.HUB_CULL_TIMEOUT = 60.0
    rows = [running_row(u, started_ago=600, idle_for=120) for u in (alice, bob)]
    reports: list[services.CullReport] = []
    threads = [threading.Thread(target=lambda: reports.append(services.cull_idle())) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(r.stopped) for r in reports) == 2
    wait_stopped(*rows)
    for row in rows:
        assert len(culled_events(row)) == 1
        assert row.events.filter(kind=ServerEvent.Kind.STOP_REQUESTED).count() == 1


def test_five_hundred_idle_servers_are_culled_in_one_pass(settings, celery_live_worker):
    """500 stand-in servers: each is a real `sleep` process in its own session
    (what the local spawner's stop signals), since 500 Jupyter servers do not
    fit on this machine. Duration printed, not asserted."""
    settings.HUB_CULL_TIMEOUT = 60.0
    settings.HUB_STOP_GRACE = 5
    count = 500
    procs = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(count)]
    try:
        users = User.objects.bulk_create(
            [User(username=f"idle{i:03d}", is_approved=True) for i in range(count)]
        )
        now = timezone.now()
        Server.objects.bulk_create(
            [
                Server(
                    user=user,
                    name="",
                    state=State.RUNNING,
                    started=now - timedelta(hours=1),
                    last_activity=now - timedelta(minutes=5),
                    spawner_state={"pid": p.pid, "started": process_start_time(p.pid)},
                )
                for user, p in zip(users, procs, strict=True)
            ]
        )
        began = time.monotonic()
        report = services.cull_idle()
        wait_for(
            lambda: Server.objects.filter(state=State.STOPPED).count() == count,
            timeout=300,
            what="all 500 servers to stop",
        )
        stopped = time.monotonic() - began
        print(
            f"\n500 idle servers: one pass (decisions and 500 stop claims) {report.seconds:.2f}s;"
            f" all 500 processes stopped {stopped:.2f}s after the pass began"
        )
        assert len(report.stopped) == count
        assert all(p.poll() is not None or p.wait(5) is not None for p in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
