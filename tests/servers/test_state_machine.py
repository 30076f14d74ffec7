"""The server state machine under double and concurrent requests: every
transition is a compare-and-set, so racing requests claim it exactly once."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest
from django.db import OperationalError, connection

from servers import services
from servers.models import Server, ServerEvent
from tests.factories import ServerFactory
from tests.servers.hooks import enqueues

State = Server.State
Kind = ServerEvent.Kind
THREADS = 6


def race(action: Callable[[int], int]) -> list[int]:
    """Run ACTION(i) in THREADS threads released together; their results."""
    barrier = threading.Barrier(THREADS)
    results: list[int] = [0] * THREADS

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = _retry_when_locked(lambda: action(i))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _retry_when_locked(call: Callable[[], int]) -> int:
    """The in-memory SQLite test database (shared cache) fails at once with
    "table is locked" where a file database would wait for its busy timeout,
    as the hub's does; retry to get the same serialization. PostgreSQL (CI)
    never takes this path."""
    for _ in range(500):
        try:
            return call()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.01)
    raise AssertionError("database stayed locked")


def kinds(server: Server) -> list[str]:
    return list(server.events.order_by("id").values_list("kind", flat=True))


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_claim_one_spawn(alice, api_client_for):
    clients = [api_client_for(alice) for _ in range(THREADS)]
    statuses = race(lambda i: clients[i].post("/hub/api/users/alice/server").status_code)
    assert statuses == [202] * THREADS
    server = Server.objects.get(user=alice, name="")
    assert server.state == State.STARTING
    assert kinds(server) == [Kind.START_REQUESTED]


@pytest.mark.django_db(transaction=True)
def test_concurrent_stops_claim_one_stop(alice, api_client_for):
    server = ServerFactory(user=alice, state=State.RUNNING)
    clients = [api_client_for(alice) for _ in range(THREADS)]
    statuses = race(lambda i: clients[i].delete("/hub/api/users/alice/server").status_code)
    assert statuses == [202] * THREADS
    server.refresh_from_db()
    assert server.state == State.STOPPING
    assert kinds(server) == [Kind.STOP_REQUESTED]


@pytest.mark.django_db(transaction=True)
def test_racing_start_and_stop_never_double_claim(alice, api_client_for):
    ServerFactory(user=alice, state=State.STOPPED)
    clients = [api_client_for(alice) for _ in range(THREADS)]

    def start_or_stop(i: int) -> int:
        client = clients[i]
        url = "/hub/api/users/alice/server"
        return (client.post(url) if i % 2 else client.delete(url)).status_code

    statuses = race(start_or_stop)
    assert set(statuses) <= {202, 204, 400}
    history = kinds(Server.objects.get(user=alice))
    # claims alternate: a second start needs a stop in between, and vice versa
    assert all(a != b for a, b in itertools.pairwise(history))
    assert history[:1] == [Kind.START_REQUESTED]


@pytest.mark.django_db
def test_start_twice_enqueues_once(alice, django_capture_on_commit_callbacks):
    server = ServerFactory(user=alice)
    with django_capture_on_commit_callbacks() as queued:
        assert services.request_start(server, by="t", user_options={}) is True
        assert services.request_start(server, by="t", user_options={}) is False
    assert len(enqueues(queued)) == 1


@pytest.mark.django_db
def test_stop_twice_enqueues_once(alice, django_capture_on_commit_callbacks):
    server = ServerFactory(user=alice, state=State.RUNNING)
    with django_capture_on_commit_callbacks() as queued:
        assert services.request_stop(server, by="t") is True
        assert services.request_stop(server, by="t") is False
    assert len(enqueues(queued)) == 1


@pytest.mark.django_db
def test_stop_task_run_twice_is_harmless(alice):
    server = ServerFactory(user=alice, state=State.STOPPING)
    services.stop_on_spawner(server.pk)
    services.stop_on_spawner(server.pk)
    server.refresh_from_db()
    assert server.state == State.STOPPED
    assert kinds(server) == [Kind.STOPPED]


@pytest.mark.django_db
def test_spawn_task_for_a_server_no_longer_starting_does_nothing(alice):
    server = ServerFactory(user=alice, state=State.STOPPING)
    services.start_on_spawner(server.pk)
    server.refresh_from_db()
    assert server.state == State.STOPPING
    assert kinds(server) == []


@pytest.mark.django_db
def test_stop_during_start_wins_over_a_late_ready(alice):
    server = ServerFactory(user=alice, state=State.STARTING)
    assert services.request_stop(server, by="t") is True
    assert services.mark_running(server.pk, url="http://127.0.0.1:9") is False
    server.refresh_from_db()
    assert server.state == State.STOPPING


@pytest.mark.django_db
def test_failed_server_can_be_started_again(alice, django_capture_on_commit_callbacks):
    server = ServerFactory(user=alice, state=State.FAILED, failure="boom")
    with django_capture_on_commit_callbacks():
        assert services.request_start(server, by="t", user_options={}) is True
    server.refresh_from_db()
    assert server.state == State.STARTING
    assert server.failure == ""


def break_revoke(monkeypatch, module: object) -> None:
    """MODULE's revoke_credentials fails as a database gone mid-revoke would."""

    def broken(_server: Server) -> None:
        raise OperationalError("the database went away mid-revoke")

    monkeypatch.setattr(module, "revoke_credentials", broken)


@pytest.mark.django_db(transaction=True)
def test_a_failure_whose_credentials_cannot_be_revoked_leaves_the_server_as_it_was(
    alice, monkeypatch
):
    """mark_failed is one transaction: no reader ever sees a failed server
    whose credentials still work."""
    from servers.services import claims, credentials

    server = ServerFactory(user=alice, state=State.STARTING)
    token = credentials.issue_credentials(server)

    break_revoke(monkeypatch, claims)
    with pytest.raises(OperationalError):
        claims.mark_failed(server, "did not answer")
    server.refresh_from_db()
    assert server.state == State.STARTING and server.failure == ""
    assert not server.events.filter(kind=ServerEvent.Kind.FAILED).exists()
    assert token and server.tokens.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_stop_whose_credentials_cannot_be_revoked_leaves_the_server_stopping(alice, monkeypatch):
    """finish_stop is one transaction too: a stopped server's token never
    outlives its stop, and the stop can be finished again (reconcile)."""
    from servers.services import launch

    server = ServerFactory(user=alice, state=State.STOPPING)
    token = services.issue_credentials(server)

    break_revoke(monkeypatch, launch)
    with pytest.raises(OperationalError):
        launch.finish_stop(server, time.monotonic())
    server.refresh_from_db()
    assert server.state == State.STOPPING
    assert not server.events.filter(kind=ServerEvent.Kind.STOPPED).exists()
    assert token and server.tokens.count() == 1

    monkeypatch.undo()
    launch.finish_stop(server, time.monotonic())
    server.refresh_from_db()
    assert server.state == State.STOPPED
    assert server.events.filter(kind=ServerEvent.Kind.STOPPED).count() == 1
    assert server.tokens.count() == 0 and server.probe_token == ""


@pytest.mark.django_db
def test_new_credentials_replace_the_old_token_and_client_together(alice):
    from accounts.models import OAuthClient

    server = ServerFactory(user=alice, state=State.STARTING)
    first = services.issue_credentials(server)
    second = services.issue_credentials(server)
    assert first != second
    assert server.tokens.count() == 1
    client = OAuthClient.objects.get(server=server)
    assert client.secret_matches(second) and not client.secret_matches(first)
