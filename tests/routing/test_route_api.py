"""The route API the router pulls, and JupyterHub's GET /hub/api/proxy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from servers.models import Server
from tests.factories import ServerFactory, UserFactory


@pytest.fixture
def router_client(db, settings) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {settings.HUB_ROUTER_TOKEN}")
    return client


def running(user, name: str = "", port: int = 41234) -> Server:
    return ServerFactory(
        user=user, name=name, state=Server.State.RUNNING, url=f"http://127.0.0.1:{port}"
    )


def test_full_table_lists_running_servers_with_an_etag(router_client, alice, bob):
    running(alice)
    running(alice, "lab", 41235)
    ServerFactory(user=bob, state=Server.State.STARTING)
    response = router_client.get("/hub/api/routes")
    assert response.status_code == 200
    body = response.json()
    assert body["full"] is True
    assert body["routes"] == {
        "/user/alice/": {"target": "http://127.0.0.1:41234", "user": "alice", "server_name": ""},
        "/user/alice/lab/": {
            "target": "http://127.0.0.1:41235",
            "user": "alice",
            "server_name": "lab",
        },
    }
    assert response["ETag"] == f'"{body["version"]}"'


def test_unchanged_table_answers_304_to_if_none_match(router_client, alice):
    running(alice)
    etag = router_client.get("/hub/api/routes")["ETag"]
    assert router_client.get("/hub/api/routes", HTTP_IF_NONE_MATCH=etag).status_code == 304
    Server.objects.update(state=Server.State.STOPPED, url="", changed=timezone.now())
    assert router_client.get("/hub/api/routes", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_incremental_update_sends_changed_routes_and_removals_as_null(router_client, alice, bob):
    server = running(alice)
    version = router_client.get("/hub/api/routes").json()["version"]
    later = timezone.now() + timedelta(seconds=1)
    Server.objects.filter(pk=server.pk).update(state=Server.State.STOPPED, url="", changed=later)
    running(bob)
    Server.objects.filter(user=bob).update(changed=later)
    body = router_client.get("/hub/api/routes", {"since": version}).json()
    assert body["full"] is False
    assert body["routes"]["/user/alice/"] is None
    assert body["routes"]["/user/bob/"]["target"] == "http://127.0.0.1:41234"
    assert body["version"] != version


def test_incremental_update_rejects_a_malformed_version(router_client):
    response = router_client.get("/hub/api/routes", {"since": "yesterday"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/user/alice/lab/tree", "/user/alice/lab/"),
        ("/user/alice/api/status", "/user/alice/"),
        ("/user/alice/", "/user/alice/"),
    ],
)
def test_lookup_prefers_the_longest_prefix(router_client, alice, path, prefix):
    running(alice)
    running(alice, "lab", 41235)
    response = router_client.get("/hub/api/routes/lookup", {"path": path})
    assert response.status_code == 200
    assert response.json()["prefix"] == prefix


@pytest.mark.parametrize(
    "path", ["/user/bob/", "/user/Alice/", "/user/alice/../bob/", "/hub/home", "", "/user/ali/"]
)
def test_lookup_answers_404_when_there_is_no_route(router_client, alice, bob, path):
    running(alice)
    response = router_client.get("/hub/api/routes/lookup", {"path": path})
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_activity_moves_last_activity_forward_only(router_client, alice):
    server = running(alice)
    old = timezone.now() - timedelta(hours=2)
    Server.objects.filter(pk=server.pk).update(last_activity=old)
    newer = old + timedelta(hours=1)
    stamp = newer.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    response = router_client.post(
        "/hub/api/routes/activity", {"/user/alice/": stamp, "/user/ghost/": stamp}, format="json"
    )
    assert response.status_code == 204
    server.refresh_from_db()
    alice.refresh_from_db()
    assert server.last_activity == newer
    assert alice.last_activity == newer
    older = (old - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    router_client.post("/hub/api/routes/activity", {"/user/alice/": older}, format="json")
    server.refresh_from_db()
    assert server.last_activity == newer


def test_a_report_naming_many_servers_costs_the_same_few_queries(router_client):
    base = timezone.now() - timedelta(hours=3)
    servers = [running(UserFactory(username=f"busy{i}"), port=42000 + i) for i in range(40)]
    named = [running(servers[0].user, "lab", 41999)]
    Server.objects.update(last_activity=base)
    # even-numbered servers were seen later than the report's traffic: kept
    for server in servers[::2]:
        Server.objects.filter(pk=server.pk).update(last_activity=base + timedelta(hours=2))
    seen = base + timedelta(hours=1)
    stamp = seen.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    report = {s.prefix: stamp for s in servers + named} | {"/user/ghost/": stamp}
    with CaptureQueriesContext(connection) as queries:
        response = router_client.post("/hub/api/routes/activity", report, format="json")
    assert response.status_code == 204
    assert len(queries) <= 4  # read the servers, move them, move their users (+ a transaction)
    after = dict(Server.objects.values_list("pk", "last_activity"))
    for i, server in enumerate(servers):
        assert after[server.pk] == (base + timedelta(hours=2) if i % 2 == 0 else seen)
    assert after[named[0].pk] == seen
    users = dict(
        User.objects.filter(username__startswith="busy").values_list("username", "last_activity")
    )
    assert set(users.values()) == {seen}


@pytest.mark.parametrize(
    "body", [["/user/alice/"], {"/user/alice/": "soon"}, {"/elsewhere/": "2026-01-01T00:00:00Z"}]
)
def test_activity_rejects_malformed_reports_with_400(router_client, alice, body):
    response = router_client.post("/hub/api/routes/activity", body, format="json")
    assert response.status_code == 400


def test_jupyterhub_proxy_endpoint_returns_chp_shaped_table(api_client_for, admin, alice):
    running(alice)
    response = api_client_for(admin).get("/hub/api/proxy")
    assert response.status_code == 200
    entry = response.json()["/user/alice/"]
    assert entry["routespec"] == "/user/alice/"
    assert entry["target"] == "http://127.0.0.1:41234"
    assert entry["data"]["user"] == "alice"
    assert entry["data"]["server_name"] == ""
    assert entry["data"]["last_activity"] is None


@pytest.mark.parametrize(
    "url", ["/hub/api/routes", "/hub/api/routes/lookup?path=/user/alice/", "/hub/api/proxy"]
)
def test_route_api_refuses_users_without_the_proxy_scope(api_client_for, alice, url):
    assert api_client_for(alice).get(url).status_code == 403


@pytest.mark.parametrize("header", ["token not-the-router-token", ""])
def test_route_api_refuses_forged_or_missing_tokens_with_403(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/hub/api/routes")
    assert response.status_code == 403
    assert response.json()["status"] == 403


def test_many_routes_are_served_in_one_table(router_client):
    for n in range(50):
        running(UserFactory(username=f"u{n}"), port=42000 + n)
    assert len(router_client.get("/hub/api/routes").json()["routes"]) == 50


def test_a_full_table_is_built_once_per_version_until_the_database_is_replaced(
    router_client, alice
):
    """Routers asking for one version share one build; a database replaced
    under the hub (what each test does) needs forget_full_body, since the
    same version number may then stand for another table."""
    from routing.api import routes

    server = running(alice)
    first = router_client.get("/hub/api/routes").json()
    with connection.cursor() as cursor:  # behind the feed's back, as a restore would be
        cursor.execute(
            f"UPDATE {Server._meta.db_table} SET url = %s WHERE id = %s",
            ["http://127.0.0.1:41299", server.pk],
        )
    assert router_client.get("/hub/api/routes").json() == first  # the kept build
    routes.forget_full_body()
    again = router_client.get("/hub/api/routes").json()
    assert again["version"] == first["version"]
    assert again["routes"]["/user/alice/"]["target"] == "http://127.0.0.1:41299"
