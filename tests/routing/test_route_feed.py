"""The route change feed behind `since=`: exactly the changes committed after a
version, from every way a server's route moves, and a full table when the feed
cannot continue."""

from __future__ import annotations

import os
import threading

import pytest
from django.db import connection, transaction
from django.db.models import Value
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from servers import routefeed
from servers.models import RouteChange, Server
from servers.services import claims
from tests.factories import ServerFactory, UserFactory
from tests.live import wait_for

ROUTE = {"target": "http://127.0.0.1:41234", "user": "alice", "server_name": ""}


@pytest.fixture
def router_client(db, settings) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {settings.HUB_ROUTER_TOKEN}")
    return client


def poll(client: APIClient, version: str) -> dict:
    response = client.get("/hub/api/routes", {"since": version})
    assert response.status_code == 200
    return response.json()


def running(user, name: str = "", port: int = 41234) -> Server:
    return ServerFactory(
        user=user, name=name, state=Server.State.RUNNING, url=f"http://127.0.0.1:{port}"
    )


def test_a_poll_when_nothing_changed_returns_nothing_and_the_same_version(router_client, alice):
    running(alice)
    version = router_client.get("/hub/api/routes").json()["version"]
    body = poll(router_client, version)
    assert body == {"version": version, "full": False, "routes": {}}


def test_a_poll_returns_each_change_once_and_never_again(router_client, alice, bob):
    version = router_client.get("/hub/api/routes").json()["version"]
    running(alice)
    first = poll(router_client, version)
    assert first["routes"] == {"/user/alice/": ROUTE}
    running(bob, port=41235)
    second = poll(router_client, first["version"])
    assert list(second["routes"]) == ["/user/bob/"]
    assert poll(router_client, second["version"])["routes"] == {}


def test_the_last_change_of_a_server_wins(router_client, alice):
    version = router_client.get("/hub/api/routes").json()["version"]
    server = running(alice)
    Server.objects.filter(pk=server.pk).update(url="http://127.0.0.1:41299")
    body = poll(router_client, version)
    assert body["routes"]["/user/alice/"]["target"] == "http://127.0.0.1:41299"


def test_the_state_transitions_move_the_route(router_client, alice):
    server = ServerFactory(user=alice, state=Server.State.STARTING)
    version = router_client.get("/hub/api/routes").json()["version"]
    assert claims.mark_running(server.pk, url="http://127.0.0.1:41234")
    up = poll(router_client, version)
    assert up["routes"] == {"/user/alice/": ROUTE}
    server.refresh_from_db()
    assert claims.request_stop(server, by="alice")
    down = poll(router_client, up["version"])
    assert down["routes"] == {"/user/alice/": None}


def test_a_failed_server_loses_its_route(router_client, alice):
    server = running(alice)
    version = router_client.get("/hub/api/routes").json()["version"]
    claims.mark_failed(server, "it crashed")
    assert poll(router_client, version)["routes"] == {"/user/alice/": None}


def test_deleting_a_running_server_or_its_user_removes_the_route(router_client, alice, bob):
    lab = running(alice, "lab")
    running(bob)
    version = router_client.get("/hub/api/routes").json()["version"]
    lab.delete()  # the admin's delete of a row still running
    bob.delete()  # cascades to bob's server
    body = poll(router_client, version)
    assert body["routes"] == {"/user/alice/lab/": None, "/user/bob/": None}


def test_activity_updates_add_nothing_to_the_feed(router_client, alice):
    running(alice)
    before = routefeed.last_id()
    Server.objects.update(last_activity=timezone.now())
    assert routefeed.last_id() == before


def test_moves_between_states_without_a_route_add_nothing_to_the_feed(alice):
    server = ServerFactory(user=alice)
    before = routefeed.last_id()
    assert claims.request_start(server, by="alice", user_options={})
    claims.mark_failed(server, "the image does not exist")
    assert routefeed.last_id() == before


def test_a_transition_that_cannot_route_does_not_touch_the_feed(alice):
    """A start claimed, an address noted while starting, a stop finished: none
    can move a route, so none reads the routes of the servers it moved (the
    feed's query, by user name) or the feed (one query less each)."""
    server = ServerFactory(user=alice)
    with CaptureQueriesContext(connection) as queries:
        assert claims.request_start(server, by="alice", user_options={})
        Server.objects.filter(pk=server.pk).update(url="http://127.0.0.1:41234")
        Server.objects.filter(pk=server.pk).update(state=Server.State.STOPPED, url="")
    feed_reads = [q["sql"] for q in queries if "user__username" in q["sql"] or "route" in q["sql"]]
    assert feed_reads == []


def test_a_route_given_by_an_expression_still_reaches_the_feed(router_client, alice):
    server = ServerFactory(user=alice, state=Server.State.STARTING, url="http://127.0.0.1:41234")
    version = router_client.get("/hub/api/routes").json()["version"]
    Server.objects.filter(pk=server.pk).update(state=Value(Server.State.RUNNING))
    assert poll(router_client, version)["routes"] == {"/user/alice/": ROUTE}


def test_a_compare_and_set_that_matches_nothing_records_nothing(alice):
    server = running(alice)
    before = routefeed.last_id()
    assert Server.objects.filter(pk=server.pk, state=Server.State.STARTING).update(url="") == 0
    assert routefeed.last_id() == before


def test_change_ids_follow_each_other_without_gaps(alice, bob):
    running(alice)
    running(bob)
    Server.objects.update(state=Server.State.STOPPED, url="")
    ids = list(RouteChange.objects.values_list("id", flat=True))
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[-1] == routefeed.last_id()


def test_a_version_behind_the_pruned_feed_gets_the_full_table(router_client, alice):
    running(alice)
    old = router_client.get("/hub/api/routes").json()["version"]
    running(UserFactory(username="bob"))
    RouteChange.objects.filter(id__lte=int(old) + 1).delete()  # what pruning does
    body = poll(router_client, old)
    assert body["full"] is True
    assert set(body["routes"]) == {"/user/alice/", "/user/bob/"}


def test_a_version_from_another_database_gets_the_full_table(router_client, alice):
    running(alice)
    body = poll(router_client, str(routefeed.last_id() + 1000))
    assert body["full"] is True
    assert body["routes"] == {"/user/alice/": ROUTE}


@pytest.mark.parametrize("version", ["1733000000000000-3", "-1", "1e9", "9" * 40])
def test_versions_of_another_shape_are_refused_with_400(router_client, version):
    response = router_client.get("/hub/api/routes", {"since": version})
    assert response.status_code == 400
    assert "not a route table version" in response.json()["message"]


def test_pruning_keeps_the_newest_changes(alice, monkeypatch):
    monkeypatch.setattr(routefeed, "KEEP", 3)
    monkeypatch.setattr(routefeed, "PRUNE_EVERY", 2)
    server = running(alice)
    for port in range(41240, 41250):
        Server.objects.filter(pk=server.pk).update(url=f"http://127.0.0.1:{port}")
    last = routefeed.last_id()
    ids = list(RouteChange.objects.values_list("id", flat=True))
    assert ids[-1] == last
    assert len(ids) <= 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "postgresql" not in os.environ.get("HUB_DATABASE_URL", ""),
    reason="waits on a row lock seen in pg_locks (PostgreSQL; SQLite has one writer anyway)",
)
def test_a_change_cannot_commit_ahead_of_an_earlier_open_one():
    """The sequence trap: T1 takes id N, T2 takes N+1 and commits, a router reads
    N+1 and moves past N before T1 commits. Here T2 waits for T1's feed lock."""
    alice = running(UserFactory(username="alice"))
    bob = running(UserFactory(username="bob"), port=41235)
    start = routefeed.last_id()
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with transaction.atomic():
            Server.objects.filter(pk=alice.pk).update(url="http://127.0.0.1:41300")
            holding.set()
            release.wait(30)
        connection.close()

    def second() -> None:
        Server.objects.filter(pk=bob.pk).update(url="http://127.0.0.1:41301")
        connection.close()

    one = threading.Thread(target=first)
    one.start()
    assert holding.wait(30)
    two = threading.Thread(target=second)
    two.start()
    wait_for(lambda: _lock_waiters() > 0, timeout=30, what="the second writer to wait")
    assert routefeed.changes_after(start) == (start, [])
    release.set()
    one.join(30)
    two.join(30)
    last, changes = routefeed.changes_after(start)
    assert [c.prefix for c in changes] == ["/user/alice/", "/user/bob/"]
    assert last == start + 2


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_wake_file_says_pending_before_a_route_change_commits_and_its_number_after(
    alice, settings, tmp_path
):
    """A client can see a server running before the hub has announced the
    change; meanwhile the file must not name a version a router has pulled."""
    from routing.router import wakefile

    wake = tmp_path / "routes-changed"
    settings.HUB_ROUTE_WAKE_FILE = str(wake)
    settings.HUB_REDIS_URL = ""
    server = ServerFactory(user=alice, state=Server.State.STARTING)
    seen_inside = []
    with transaction.atomic():
        Server.objects.filter(pk=server.pk).update(
            state=Server.State.RUNNING, url="http://127.0.0.1:41234"
        )
        seen_inside.append(wakefile.read_wake(wake))
    assert seen_inside == [f"{wakefile.PENDING} {routefeed.last_id()}"]
    assert wakefile.read_version(wake) == str(routefeed.last_id())
