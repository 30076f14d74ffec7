"""Faults, found by killing real processes: Celery workers are OS processes
(tests/scheduler/processes.py), the servers are real Jupyter servers, the
brokers are the embedded filesystem one and a real Redis of the test's own.
Every test ends with the audit (reliability.md §5.5): every accepted start or
stop reached a final state, no orphan process, no duplicate server, the
database and the spawner agree. Times to a final state are printed."""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.utils import timezone

from hubsite.celery import app as celery_app
from scheduler.schedule import beat_schedule
from servers import services
from servers.models import Server, ServerEvent
from servers.spawners import get_spawner
from tests.live import launch_router, wait_for
from tests.scheduler.processes import (
    HubProcess,
    RedisServer,
    WorkerProcess,
    audit,
    process_env,
    start_worker,
    wait_final,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
State = Server.State


@pytest.fixture
def fault_settings(settings, live_hub):
    """Short leases and intervals so a fault test takes seconds."""
    settings.HUB_SPAWN_LEASE = 3.0
    settings.HUB_RECONCILE_EVERY = 1.0
    settings.HUB_START_TIMEOUT = 60
    settings.HUB_STOP_GRACE = 3
    return settings


def filesystem_options() -> dict[str, object]:
    broker = Path(django_settings.HUB_DATA_DIR) / "broker"
    for sub in ("in", "processed", "control", "unacked"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(broker / "in"),
        "data_folder_out": str(broker / "in"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
        "unacked_folder": str(broker / "unacked"),
        "polling_interval": 0.05,
        "visibility_timeout": 3600,
    }


@contextmanager
def broker(kind: str, redis: RedisServer | None = None) -> Iterator[dict[str, str]]:
    """Point this process's Celery app at KIND's broker; yields the env that
    gives a worker process the same one."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport, conf.broker_transport_options)
    if kind == "redis":
        assert redis is not None
        conf.broker_url, conf.broker_transport = redis.url, None
        conf.broker_transport_options = {"visibility_timeout": 3600}
        env = {"HUB_REDIS_URL": redis.url}
    else:
        conf.broker_url, conf.broker_transport = "filesystem://", "hubsite.broker:Transport"
        conf.broker_transport_options = filesystem_options()
        env = {"HUB_REDIS_URL": ""}
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield env
    finally:
        conf.broker_url, conf.broker_transport, conf.broker_transport_options = saved
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


@contextmanager
def beat(tmp_path: Path) -> Iterator[None]:
    """Celery beat in a thread (reconcile every HUB_RECONCILE_EVERY)."""
    from celery.beat import EmbeddedService

    saved = celery_app.conf.beat_schedule
    celery_app.conf.beat_schedule = beat_schedule()
    service = EmbeddedService(celery_app, schedule_filename=str(tmp_path / "beat"))
    service.start()
    try:
        yield
    finally:
        service.stop()
        celery_app.conf.beat_schedule = saved


def owner_pid(server: Server) -> int | None:
    """The pid of the worker whose spawn attempt owns SERVER's start."""
    worker = Server.objects.get(pk=server.pk).worker
    parts = worker.split("@")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def kill_owner(server: Server, workers: list[WorkerProcess]) -> WorkerProcess:
    pid = wait_for(lambda: owner_pid(server), timeout=60, what="a worker to claim the start")
    victim = next(w for w in workers if w.pid == pid)
    victim.kill(signal.SIGKILL)
    victim.wait_exit()
    return victim


@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_a_spawn_whose_worker_is_killed_finishes_within_seconds(
    kind, alice, fault_settings, worker_processes, own_redis, tmp_path
):
    """The worker is SIGKILLed 30 ms after it claimed the start; a replacement
    worker starts (as a supervisor would restart it). Filesystem broker: the
    message is back in the queue as soon as its taker is dead. Redis (its
    visibility timeout is an hour): the replacement's start-up reconcile sees
    the dead worker on the server row and enqueues the start again. Either
    way the new task takes the start over and cleans up after the dead one."""
    with broker(kind, own_redis) as env, beat(tmp_path):
        worker_processes.append(start_worker("first", env=env))
        server = services.get_or_create_server(alice, "")
        assert services.request_start(server, by="alice", user_options={})
        wait_for(lambda: owner_pid(server), timeout=60, what="the claim")
        time.sleep(0.03)
        kill_owner(server, worker_processes)
        killed, killed_at = time.monotonic(), timezone.now()
        worker_processes.append(start_worker("second", env=env))
        wait_final(server, timeout=90)
        took = time.monotonic() - killed
    taken = server.events.filter(message__startswith="Taking over").first()
    resumed = (taken.created - killed_at).total_seconds() if taken else None
    print(
        f"\n[{kind}] worker killed mid-spawn: taken over {resumed:.2f}s later (a new worker"
        f" started meanwhile), final state {server.state} {took:.2f}s after the kill"
    )
    assert server.state == State.RUNNING, server.failure
    assert server.events.filter(kind=ServerEvent.Kind.READY).count() == 1
    audit()


@pytest.mark.parametrize("kind", ["filesystem", "redis"])
def test_sigterm_during_a_spawn_lets_it_finish(
    kind, alice, fault_settings, worker_processes, own_redis
):
    """A warm shutdown (a rolling update): the running spawn completes first."""
    with broker(kind, own_redis) as env:
        worker = start_worker("only", env=env)
        worker_processes.append(worker)
        server = services.get_or_create_server(alice, "")
        services.request_start(server, by="alice", user_options={})
        wait_for(lambda: owner_pid(server), timeout=60, what="the claim")
        asked = time.monotonic()
        worker.kill(signal.SIGTERM)
        wait_final(server, timeout=90)
        worker.wait_exit(60)
        took = time.monotonic() - asked
    print(f"\n[{kind}] SIGTERM mid-spawn: {server.state} {took:.2f}s later, worker exited")
    assert server.state == State.RUNNING, server.failure
    audit()


def test_sigkill_at_random_points_of_twenty_spawns(
    alice, fault_settings, worker_processes, own_redis, tmp_path
):
    """Twenty starts, each with the worker that owns it (or, before any claim,
    one of the two) SIGKILLed at a random point from 0 to 0.6 s after the
    request: before the claim, while the server launches, while it is waited
    for, or after it is ready. Two workers run; a killed one is replaced."""
    kind = "redis" if django_settings.HUB_REDIS_URL else "filesystem"
    rng = random.Random(20)
    times: list[float] = []
    outcomes: dict[str, int] = {}
    mid_spawn = 0  # kills that landed before the server was ready
    with broker(kind, own_redis) as env, beat(tmp_path):
        worker_processes.extend(start_worker(n, env=env) for n in ("w1", "w2"))
        replacement: list[WorkerProcess] = []
        for round_ in range(20):
            server = services.get_or_create_server(alice, "")
            assert services.request_start(server, by="alice", user_options={})
            time.sleep(rng.uniform(0, 0.6))  # a forked start takes ~0.4-1 s here
            mid_spawn += Server.objects.get(pk=server.pk).state == State.STARTING
            pid = owner_pid(server)
            alive = [w for w in worker_processes if w.proc.poll() is None]
            victim = next((w for w in alive if w.pid == pid), None) or rng.choice(alive)
            victim.kill(signal.SIGKILL)
            victim.wait_exit()
            killed = time.monotonic()
            starter = threading.Thread(
                target=lambda n=f"r{round_}": replacement.append(start_worker(n, env=env))
            )
            starter.start()
            wait_final(server, timeout=90)
            times.append(time.monotonic() - killed)
            outcomes[server.state] = outcomes.get(server.state, 0) + 1
            audit()
            if server.state == State.RUNNING:
                services.request_stop(server, by="test")
                wait_final(server, timeout=30)
            assert server.state in (State.STOPPED, State.FAILED)
            audit()
            starter.join()  # it booted while this round ran
            worker_processes.extend(replacement)
            replacement.clear()
    print(
        f"\n[{kind}] 20 SIGKILLs ({mid_spawn} before the server was ready): outcomes {outcomes};"
        " time to final state"
        f" min {min(times):.2f}s median {statistics.median(times):.2f}s max {max(times):.2f}s"
    )
    assert sum(outcomes.values()) == 20


def test_a_killed_user_server_is_noticed_and_its_user_sees_not_running(
    alice, start_server, router, fault_settings, tmp_path
):
    """F6: the process dies; reconcile (beat, every second here) marks it
    failed, the route goes, and the user's next request gets the hub's
    "not running" page with a start button, not a proxy error."""
    from tests.servers.test_singleuser_e2e import browser_for

    server = start_server(alice)
    browser = browser_for(alice, router.url)
    assert browser.get(f"{router.url}/user/alice/lab").status_code == 200
    os.killpg(server.spawner_state["pid"], signal.SIGKILL)
    killed = time.monotonic()
    with beat(tmp_path):
        wait_final_state(server, State.FAILED)
    detected = time.monotonic() - killed

    def not_running_page() -> list[requests.Response]:
        page = browser.get(f"{router.url}/user/alice/lab")
        return [page] if page.status_code == 424 else []  # a 4xx Response is falsy

    [page] = wait_for(not_running_page, timeout=10, what="the route to go")
    routed = time.monotonic() - killed
    print(f"\nkilled server: failed {detected:.2f}s later, hub page {routed:.2f}s later")
    assert 'id="launch"' in page.text and "Your server is not running" in page.text
    assert "exited" in Server.objects.get(pk=server.pk).failure
    audit()


def wait_final_state(server: Server, state: str) -> None:
    wait_for(
        lambda: Server.objects.get(pk=server.pk).state == state,
        timeout=30,
        what=f"{server} to be {state}",
    )


def test_start_stop_races_end_with_one_server_or_none(
    alice, bob, carol, admin, api_client_for, fault_settings, celery_live_worker
):
    """F10 with a real worker: two starts at once give one server; a stop
    while starting gives none; deleting the user while starting leaves no
    process. Then the audit."""
    starts = []
    client = api_client_for(alice)
    threads = [
        threading.Thread(
            target=lambda: starts.append(client.post("/hub/api/users/alice/server").status_code)
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(starts) <= {201, 202} and len(starts) == 2, starts
    alice_server = Server.objects.get(user=alice, name="")
    wait_final(alice_server, timeout=90)
    assert alice_server.state == State.RUNNING
    assert alice_server.events.filter(kind=ServerEvent.Kind.READY).count() == 1

    bob_server = services.get_or_create_server(bob, "")
    services.request_start(bob_server, by="bob", user_options={})
    wait_for(lambda: owner_pid_of(bob_server), timeout=30, what="bob's start to be claimed")
    services.request_stop(bob_server, by="bob")
    wait_final(bob_server, timeout=60)
    assert bob_server.state == State.STOPPED

    carol_server = services.get_or_create_server(carol, "")
    services.request_start(carol_server, by="carol", user_options={})
    wait_for(lambda: owner_pid_of(carol_server), timeout=30, what="carol's start to be claimed")
    assert api_client_for(admin).delete("/hub/api/users/carol").status_code == 204
    # the spawn task notices the row is gone and stops what it launched
    wait_for(
        lambda: not [r for r in get_spawner().list_running() if r.username == "carol"],
        timeout=60,
        what="carol's process to be gone",
    )
    services.request_stop(alice_server, by="alice")
    wait_final(alice_server, timeout=30)
    audit()


def owner_pid_of(server: Server) -> bool:
    row = Server.objects.filter(pk=server.pk).first()
    return bool(row and row.attempt and row.worker)


def test_redis_down_for_a_minute(
    alice, bob, carol, admin, api_client_for, fault_settings, worker_processes, own_redis
):
    """F7 on a Redis of the test's own (the shared one is never stopped):
    while it is down pages answer, a running server keeps running, a start
    fails at once with a clear reason (never accepted and lost); once it is
    back the worker reconnects and starts work again."""
    from tests.servers.test_singleuser_e2e import browser_for

    with broker("redis", own_redis) as env:
        worker_processes.append(start_worker("w", env=env))
        running = services.get_or_create_server(alice, "")
        services.request_start(running, by="alice", user_options={})
        wait_final(running, timeout=90)
        assert running.state == State.RUNNING
        own_redis.stop()
        down = time.monotonic()
        live = django_settings.HUB_PUBLIC_URL
        home = browser_for(carol, live).get(f"{live}/hub/home", timeout=10)
        assert home.status_code == 200
        began = time.monotonic()
        response = api_client_for(bob).post("/hub/api/users/bob/server")
        refused_in = time.monotonic() - began
        assert response.status_code == 202
        bob_server = Server.objects.get(user=bob, name="")
        assert bob_server.state == State.FAILED
        assert "task queue is unreachable" in bob_server.failure
        assert get_spawner().poll(Server.objects.get(pk=running.pk).spawner_state) is None
        time.sleep(max(0.0, 60 - (time.monotonic() - down)))  # the outage itself
        own_redis.start()
        back = time.monotonic()
        assert services.request_start(bob_server, by="bob", user_options={})
        wait_final(bob_server, timeout=120)
        recovered = time.monotonic() - back
        assert bob_server.state == State.RUNNING, bob_server.failure
        assert Server.objects.get(pk=running.pk).state == State.RUNNING
    print(
        f"\nRedis down 60 s: a start failed with a reason in {refused_in:.2f}s;"
        f" after it came back a start ran in {recovered:.2f}s"
    )
    audit()


def test_hub_restarted_with_servers_running(
    alice, bob, token_for, fault_settings, worker_processes, tmp_path, settings
):
    """F5 (JupyterHub's test_resume_spawners): the hub (gunicorn, as `make
    run` starts it) is SIGKILLed with two servers running, and one of them
    dies while it is down. The other stays reachable through the router the
    whole time; the restarted hub takes the same tokens; reconcile then marks
    the dead one failed and its route goes."""
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    settings.HUB_API_URL = hub_url + "/hub/api"
    settings.HUB_PUBLIC_URL = hub_url
    tokens = {"alice": token_for(alice), "bob": token_for(bob)}

    def get(base: str, path: str, who: str) -> int:
        headers = {"Authorization": f"token {tokens[who]}"}
        try:
            response = requests.get(
                f"{base}{path}", headers=headers, timeout=10, allow_redirects=False
            )
        except requests.RequestException:
            return 0
        return response.status_code

    with broker("filesystem") as env, beat(tmp_path):
        hub = HubProcess(port=port, env=process_env(env))
        hub.start()
        router = launch_router(hub.url, settings.HUB_ROUTER_TOKEN, hub_wakes=True)
        try:
            worker_processes.append(start_worker("w", env=env))
            servers = {}
            for who in tokens:
                response = requests.post(
                    f"{hub.url}/hub/api/users/{who}/server",
                    headers={"Authorization": f"token {tokens[who]}"},
                    timeout=30,
                )
                assert response.status_code in (201, 202), response.text
                servers[who] = wait_final(Server.objects.get(user__username=who), timeout=90)
                assert servers[who].state == State.RUNNING
            assert get(router.url, "/user/alice/api/status", "alice") == 200
            hub.kill()
            os.killpg(servers["bob"].spawner_state["pid"], signal.SIGKILL)
            bob_killed = time.monotonic()
            while_down = [get(router.url, "/user/alice/api/status", "alice") for _ in range(10)]
            hub.start()
            assert get(hub.url, "/hub/api/users/alice", "alice") == 200  # same token
            wait_final_state(servers["bob"], State.FAILED)
            reconciled = time.monotonic() - bob_killed
            assert Server.objects.get(pk=servers["alice"].pk).state == State.RUNNING
            assert get(router.url, "/user/alice/api/status", "alice") == 200
            wait_for(
                lambda: get(router.url, "/user/bob/api/status", "bob") != 200,
                timeout=10,
                what="bob's route to go",
            )
        finally:
            router.stop()
            hub.kill()
    print(
        f"\nhub restart: alice's server answered {while_down.count(200)}/10 requests while the"
        f" hub was down; bob's server, killed meanwhile, failed {reconciled:.2f}s after its"
        " death (reconcile runs in the workers: it needs no hub)"
    )
    assert while_down == [200] * 10
    audit()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
