"""POST /users/{name}/activity with JupyterHub's semantics (what
jupyterhub-singleuser sends every few minutes with its server token)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import ApiToken, User
from servers.models import Server
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db
URL = "/hub/api/users/alice/activity"
T1 = "2026-01-01T12:00:00.000000Z"
T2 = "2026-01-01T13:00:00.000000Z"


@pytest.fixture
def server(alice):
    return ServerFactory(user=alice, name="", state=Server.State.RUNNING)


@pytest.fixture
def server_client(alice, server):
    _token, raw = account_services.issue_token(
        alice,
        scopes=["users:activity!user=alice", "access:servers!server=alice/"],
        kind=ApiToken.Kind.SERVER,
        check_owner=False,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    return client


def post(client, body, url=URL):
    return client.post(url, body, format="json")


def test_server_token_records_activity_for_its_owner(alice, server, server_client):
    response = post(server_client, {"servers": {"": {"last_activity": T2}}, "last_activity": T2})
    assert response.status_code == 200
    server.refresh_from_db()
    alice.refresh_from_db()
    assert server.last_activity == datetime(2026, 1, 1, 13, tzinfo=UTC)
    assert alice.last_activity == datetime(2026, 1, 1, 13, tzinfo=UTC)


def test_activity_never_moves_backwards(alice, server, server_client):
    post(server_client, {"servers": {"": {"last_activity": T2}}, "last_activity": T2})
    post(server_client, {"servers": {"": {"last_activity": T1}}, "last_activity": T1})
    server.refresh_from_db()
    assert server.last_activity == datetime(2026, 1, 1, 13, tzinfo=UTC)


def test_naive_timestamp_is_utc(alice, server_client):
    assert post(server_client, {"last_activity": "2026-01-01T12:00:00"}).status_code == 200
    alice.refresh_from_db()
    assert alice.last_activity == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_unknown_server_name_is_400(server_client):
    response = post(server_client, {"servers": {"nope": {"last_activity": T1}}})
    assert response.status_code == 400
    assert "nope" in response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"last_activity": "yesterday"},
        {"servers": []},
        {"servers": {"": "x"}},
        {"servers": {"": {}}},
    ],
)
def test_malformed_body_is_400(server_client, body):
    assert post(server_client, body).status_code == 400


def test_non_json_body_is_400(server_client):
    response = server_client.post(URL, "not json", content_type="application/json")
    assert response.status_code == 400


def test_server_token_cannot_post_for_another_user(bob, server_client):
    assert (
        post(server_client, {"last_activity": T1}, "/hub/api/users/bob/activity").status_code == 403
    )


def test_other_user_cannot_post_activity(alice, bob, api_client_for):
    assert post(api_client_for(bob), {"last_activity": T1}).status_code == 403


def test_unknown_user_is_404_for_admin(admin, api_client_for):
    url = "/hub/api/users/nobody/activity"
    assert post(api_client_for(admin), {"last_activity": T1}, url).status_code == 404


def test_owner_may_post_own_activity(alice, api_client_for):
    assert post(api_client_for(alice), {"last_activity": T1}).status_code == 200
    assert User.objects.get(username="alice").last_activity is not None
