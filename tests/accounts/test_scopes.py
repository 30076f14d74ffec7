"""Scope filters as the API applies them: `!user=`, `!server=`, `!group=`, and
which user-model fields each read scope reveals."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import services
from servers.models import Server
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


def client_with(user, scopes):
    """A token of USER limited to SCOPES (checked against USER's own scopes)."""
    _, raw = services.issue_token(user, scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    return client


def test_user_filter_limits_list_to_that_user(admin, alice, bob, carol):
    client = client_with(admin, ["list:users!user=bob", "read:users!user=bob"])
    assert [u["name"] for u in client.get("/hub/api/users").json()] == ["bob"]
    assert client.get("/hub/api/users/alice").status_code == 403


def test_group_filter_reaches_group_members_only(admin, alice, bob, carol):
    client = client_with(admin, ["list:users!group=team", "read:users!group=team"])
    assert [u["name"] for u in client.get("/hub/api/users").json()] == ["alice", "bob"]
    assert client.get("/hub/api/users/alice").status_code == 200
    assert client.get("/hub/api/users/carol").status_code == 403


def test_group_filtered_server_scope_starts_members_servers_only(admin, alice, carol):
    client = client_with(admin, ["servers!group=team"])
    assert client.post("/hub/api/users/alice/server").status_code == 202
    assert client.post("/hub/api/users/carol/server").status_code == 403


def test_server_filter_reaches_one_server_only(admin, alice):
    ServerFactory(user=alice, name="a", state=Server.State.RUNNING)
    ServerFactory(user=alice, name="b", state=Server.State.RUNNING)
    client = client_with(admin, ["read:servers!server=alice/a", "delete:servers!server=alice/a"])
    assert client.get("/hub/api/users/alice/servers/a").status_code == 200
    assert client.get("/hub/api/users/alice/servers/b").status_code == 403
    assert client.delete("/hub/api/users/alice/servers/b").status_code == 403
    assert client.delete("/hub/api/users/alice/servers/a").status_code == 202
    # the owner of a readable server is visible, with only that server
    model = client.get("/hub/api/users/alice").json()
    assert model["name"] == "alice"
    assert list(model["servers"]) == ["a"]


def test_name_scope_reveals_only_name_and_admin(admin, alice):
    client = client_with(admin, ["list:users"])
    model = next(u for u in client.get("/hub/api/users").json() if u["name"] == "alice")
    assert model == {"kind": "user", "name": "alice", "admin": False}


def test_activity_scope_adds_last_activity(admin, alice):
    client = client_with(admin, ["list:users", "read:users:activity"])
    model = next(u for u in client.get("/hub/api/users").json() if u["name"] == "alice")
    assert set(model) == {"kind", "name", "admin", "last_activity"}


def test_groups_scope_adds_groups(admin, alice):
    client = client_with(admin, ["read:users:groups!user=alice"])
    assert client.get("/hub/api/users/alice").json() == {
        "kind": "user",
        "name": "alice",
        "groups": ["team"],
    }


def test_culler_scopes_see_servers_and_activity(admin, alice):
    ServerFactory(user=alice, state=Server.State.RUNNING)
    client = client_with(
        admin, ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    )
    users = client.get("/hub/api/users?state=ready").json()
    assert [u["name"] for u in users] == ["alice"]
    assert users[0]["servers"][""]["ready"] is True
    assert "last_activity" in users[0]
    assert client.delete("/hub/api/users/alice/server").status_code == 202


def test_list_without_list_scope_is_403_even_with_read(admin, alice):
    client = client_with(admin, ["read:users"])
    assert client.get("/hub/api/users").status_code == 403
    assert client.get("/hub/api/users/alice").status_code == 200


def test_bob_sees_nothing_of_alice_through_any_endpoint(alice, bob, api_client_for):
    ServerFactory(user=alice, state=Server.State.RUNNING)
    client = api_client_for(bob)
    for url in (
        "/hub/api/users/alice",
        "/hub/api/users/alice/server/progress",
        "/hub/api/users/alice/servers/",
        "/hub/api/users/alice/tokens",
    ):
        assert client.get(url).status_code == 403, url


def test_session_requests_need_xsrf_for_unsafe_methods(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/hub/api/users/alice").status_code == 200
    response = client.post("/hub/api/users/alice/server")
    assert response.status_code == 403
    assert "XSRF" in response.json()["message"]
