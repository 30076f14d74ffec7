"""Spawning real single-user servers through a real Celery worker, and what
happens when a process, a worker or the broker goes away."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from hubsite.celery import app as celery_app
from scheduler.tasks import reconcile_servers
from servers import services
from servers.models import Server, ServerEvent
from servers.spawners import get_spawner
from tests.factories import ProfileFactory
from tests.live import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_state(server: Server, *states: str, timeout: float = 90) -> Server:
    wait_for(
        lambda: Server.objects.get(pk=server.pk).state in states,
        timeout=timeout,
        what=f"{server} to reach {'/'.join(states)}",
    )
    server.refresh_from_db()
    return server


def test_started_server_has_a_url_events_and_a_live_process(alice, start_server):
    server = start_server(alice)
    assert server.url.startswith("http://127.0.0.1:")
    assert get_spawner().poll(server.spawner_state) is None
    progress = list(server.events.values_list("progress", flat=True))
    assert progress == sorted(progress)
    assert server.events.last().kind == ServerEvent.Kind.READY


def test_start_requested_twice_spawns_once(alice, live_hub, celery_live_worker):
    server = services.get_or_create_server(alice, "")
    assert services.request_start(server, by="alice", user_options={}) is True
    assert services.request_start(server, by="alice", user_options={}) is False
    wait_state(server, Server.State.RUNNING)
    assert server.events.filter(kind=ServerEvent.Kind.START_REQUESTED).count() == 1
    state = server.spawner_state
    services.request_stop(server, by="alice")
    wait_state(server, Server.State.STOPPED, timeout=30)
    assert get_spawner().poll(state) == 0


def test_a_start_whose_port_was_taken_starts_again_on_another(alice, start_server, monkeypatch):
    """Seen in CI: between the spawner choosing a free port and the server
    binding it, another process (here a socket the test holds) takes it."""
    from servers.spawners import local

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    given: list[int] = []
    real = local.free_port

    def first_one_taken() -> int:
        given.append(taken.getsockname()[1] if not given else real())
        return given[-1]

    monkeypatch.setattr(local, "free_port", first_one_taken)
    try:
        server = start_server(alice)
    finally:
        taken.close()
    assert len(given) >= 2
    assert server.url == f"http://127.0.0.1:{given[-1]}" != f"http://127.0.0.1:{given[0]}"
    assert server.events.filter(message__startswith="Its port was taken").count() == 1
    assert get_spawner().poll(server.spawner_state) is None


def test_dead_process_is_noticed_and_the_server_marked_failed(alice, start_server):
    server = start_server(alice)
    os.killpg(server.spawner_state["pid"], signal.SIGKILL)
    wait_for(
        lambda: get_spawner().poll(server.spawner_state) is not None,
        timeout=10,
        what="the process to die",
    )
    assert reconcile_servers() == 1
    server.refresh_from_db()
    assert server.state == Server.State.FAILED
    assert server.url == ""
    assert "exited" in server.failure


def test_start_timeout_cleans_up_and_says_why(alice, settings, live_hub, celery_live_worker):
    settings.HUB_START_TIMEOUT = 0.01  # a forked server can answer within 0.3 s
    server = services.get_or_create_server(alice, "")
    services.request_start(server, by="alice", user_options={})
    wait_state(server, Server.State.FAILED, Server.State.RUNNING)
    assert server.state == Server.State.FAILED
    assert "did not answer within" in server.failure
    assert server.tokens.count() == 0


def test_missing_user_environment_fails_with_a_clear_message(alice, live_hub, celery_live_worker):
    profile = ProfileFactory(slug="broken", user_env="/nonexistent/env", default=True)
    server = services.get_or_create_server(alice, "")
    services.request_start(server, by="alice", user_options={"profile": profile.slug})
    wait_state(server, Server.State.FAILED)
    assert "/nonexistent/env has no jupyterhub-singleuser" in server.failure


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point the real Celery app at another broker for a while. The app caches
    its connection pool and producer pool: both are replaced on the way in and
    out (not closed: a closed pool fails differently, with RuntimeError), so
    later tests publish to the real broker again."""

    def drop_pools() -> None:
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    real = (celery_app.conf.broker_url, celery_app.conf.broker_transport)
    celery_app.conf.broker_url, celery_app.conf.broker_transport = url, None
    drop_pools()
    try:
        yield
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_transport = real
        drop_pools()


def test_unreachable_broker_fails_the_start_instead_of_leaving_it_pending(alice, live_hub):
    server = services.get_or_create_server(alice, "")
    with broker_at("redis://127.0.0.1:1/0"):
        services.request_start(server, by="alice", user_options={})
    server.refresh_from_db()
    assert server.state == Server.State.FAILED
    assert "task queue is unreachable" in server.failure


def test_start_orphaned_by_a_dead_worker_is_failed_by_reconcile(alice, settings):
    server = services.get_or_create_server(alice, "")
    long_ago = timezone.now() - timedelta(seconds=settings.HUB_START_TIMEOUT + 60)
    Server.objects.filter(pk=server.pk).update(state=Server.State.STARTING, requested_at=long_ago)
    assert reconcile_servers() == 1
    server.refresh_from_db()
    assert server.state == Server.State.FAILED
    assert "worker may have died" in server.failure


def test_a_start_enqueued_again_says_why_before_its_task_is_sent(alice, monkeypatch):
    """No task ever claimed this start: reconcile sends it again, and the
    RECONCILED event is in the database by then (the new attempt's steps
    follow it on the progress stream, never precede it)."""
    from servers.services import claims

    server = services.get_or_create_server(alice, "")
    Server.objects.filter(pk=server.pk).update(
        state=Server.State.STARTING, requested_at=timezone.now() - timedelta(seconds=30)
    )
    explained_when_sent: list[bool] = []

    def send_task(name: str, args: tuple[int], **_: object) -> None:
        explained_when_sent.append(
            ServerEvent.objects.filter(server_id=args[0], kind=ServerEvent.Kind.RECONCILED).exists()
        )

    monkeypatch.setattr(claims.app, "send_task", send_task)
    assert reconcile_servers() == 1
    assert explained_when_sent == [True]
    server.refresh_from_db()
    assert server.state == Server.State.STARTING
