"""/users and /users/{name}: listing, pagination, filters, create, modify, delete."""

from __future__ import annotations

import pytest

from accounts.models import User
from servers.models import Server
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
PAGINATED = "application/jupyterhub-pagination+json"


@pytest.fixture
def many(admin):
    for i in range(12):
        UserFactory(username=f"u{i:02d}")


def names(models):
    return [m["name"] for m in models]


def test_admin_lists_all_users_as_a_bare_list(alice, bob, admin, api_client_for):
    response = api_client_for(admin).get("/hub/api/users")
    assert response.status_code == 200
    assert names(response.json()) == ["alice", "bob", "admin"]
    alice_model = response.json()[0]
    assert set(alice_model) == {
        "kind",
        "name",
        "admin",
        "roles",
        "groups",
        "server",
        "pending",
        "created",
        "last_activity",
        "servers",
    }
    assert alice_model["groups"] == ["team"]
    assert alice_model["created"].endswith("Z")


def test_plain_user_cannot_list_users(alice, api_client_for):
    response = api_client_for(alice).get("/hub/api/users")
    assert response.status_code == 403
    assert "list:users" in response.json()["message"]


def test_pagination_protocol(many, admin, api_client_for):
    client = api_client_for(admin)
    response = client.get("/hub/api/users?limit=5&offset=5&sort=name", HTTP_ACCEPT=PAGINATED)
    body = response.json()
    assert names(body["items"]) == ["u04", "u05", "u06", "u07", "u08"]
    page = body["_pagination"]
    assert (page["offset"], page["limit"], page["total"]) == (5, 5, 13)
    assert page["next"]["offset"] == 10
    assert page["next"]["url"].startswith("http://testserver/hub/api/users?")
    assert "sort=name" in page["next"]["url"]
    last = client.get("/hub/api/users?limit=5&offset=10", HTTP_ACCEPT=PAGINATED).json()
    assert len(last["items"]) == 3
    assert last["_pagination"]["next"] is None


def test_limit_is_capped_and_defaulted(many, admin, api_client_for):
    client = api_client_for(admin)
    page = client.get("/hub/api/users?limit=100000", HTTP_ACCEPT=PAGINATED).json()
    assert page["_pagination"]["limit"] == 200
    assert client.get("/hub/api/users", HTTP_ACCEPT=PAGINATED).json()["_pagination"]["limit"] == 50


def test_bad_offset_is_400(admin, api_client_for):
    assert api_client_for(admin).get("/hub/api/users?offset=x").status_code == 400


@pytest.mark.parametrize(
    ("sort", "expected"),
    [("name", ["admin", "alice", "bob"]), ("-name", ["bob", "alice", "admin"])],
)
def test_sort(alice, bob, admin, api_client_for, sort, expected):
    assert names(api_client_for(admin).get(f"/hub/api/users?sort={sort}").json()) == expected


def test_bad_sort_and_state_are_400(admin, api_client_for):
    client = api_client_for(admin)
    assert client.get("/hub/api/users?sort=password").status_code == 400
    assert client.get("/hub/api/users?state=sleepy").status_code == 400


def test_state_filters(alice, bob, carol, admin, api_client_for):
    ServerFactory(user=alice, state=Server.State.RUNNING)
    ServerFactory(user=bob, name="x", state=Server.State.STARTING)
    ServerFactory(user=carol, state=Server.State.STOPPED)
    client = api_client_for(admin)
    assert names(client.get("/hub/api/users?state=ready").json()) == ["alice"]
    assert names(client.get("/hub/api/users?state=active").json()) == ["alice", "bob"]
    assert names(client.get("/hub/api/users?state=inactive").json()) == ["carol", "admin"]


def test_name_filter(alice, bob, admin, api_client_for):
    assert names(api_client_for(admin).get("/hub/api/users?name_filter=LIC").json()) == ["alice"]


def test_servers_in_list_only_active_unless_asked(alice, admin, api_client_for):
    ServerFactory(user=alice, state=Server.State.RUNNING)
    ServerFactory(user=alice, name="old", state=Server.State.STOPPED)
    client = api_client_for(admin)
    model = client.get("/hub/api/users/alice").json()
    assert list(model["servers"]) == [""]
    assert model["server"] == "/user/alice/"
    model = client.get("/hub/api/users/alice?include_stopped_servers").json()
    assert sorted(model["servers"]) == ["", "old"]
    assert model["servers"]["old"]["stopped"] is True


def test_user_reads_self_but_not_others(alice, bob, api_client_for):
    client = api_client_for(alice)
    assert client.get("/hub/api/users/alice").json()["name"] == "alice"
    assert client.get("/hub/api/users/bob").status_code == 403
    # no existence oracle: an unknown name is also 403 without the scope
    assert client.get("/hub/api/users/nobody").status_code == 403


def test_unknown_user_is_404_for_admin(admin, api_client_for):
    response = api_client_for(admin).get("/hub/api/users/nobody")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_bulk_create(admin, alice, api_client_for):
    client = api_client_for(admin)
    response = client.post(
        "/hub/api/users", {"usernames": ["dan", "Eve", "alice"], "admin": True}, format="json"
    )
    assert response.status_code == 201
    assert names(response.json()) == ["dan", "eve"]
    assert User.objects.get(username="eve").is_superuser
    again = client.post("/hub/api/users", {"usernames": ["dan"]}, format="json")
    assert again.status_code == 409


@pytest.mark.parametrize("bad", ["has space", "-x", "", "a/b", "x" * 64, "hub"])
def test_bulk_create_rejects_invalid_names(admin, api_client_for, bad):
    response = api_client_for(admin).post(
        "/hub/api/users", {"usernames": ["fine", bad]}, format="json"
    )
    assert response.status_code == 400
    assert not User.objects.filter(username="fine").exists()


def test_bulk_create_needs_usernames(admin, api_client_for):
    assert api_client_for(admin).post("/hub/api/users", {}, format="json").status_code == 400


def test_create_one_user(admin, api_client_for):
    client = api_client_for(admin)
    response = client.post("/hub/api/users/dan", {"admin": False}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == "dan"
    assert client.post("/hub/api/users/dan").status_code == 409
    assert client.post("/hub/api/users/Bad%20Name").status_code == 400


def test_plain_user_cannot_create_users(alice, api_client_for):
    assert api_client_for(alice).post("/hub/api/users/dan").status_code == 403
    assert not User.objects.filter(username="dan").exists()


def test_patch_admin_and_name(admin, carol, api_client_for):
    client = api_client_for(admin)
    response = client.patch("/hub/api/users/carol", {"admin": True}, format="json")
    assert response.status_code == 200
    assert response.json()["admin"] is True
    response = client.patch("/hub/api/users/carol", {"name": "caroline"}, format="json")
    assert response.json()["name"] == "caroline"
    assert User.objects.filter(username="caroline", is_superuser=True).exists()


def test_patch_to_taken_or_invalid_name_is_400(admin, alice, bob, api_client_for):
    client = api_client_for(admin)
    assert client.patch("/hub/api/users/alice", {"name": "bob"}, format="json").status_code == 400
    assert client.patch("/hub/api/users/alice", {"name": "B B"}, format="json").status_code == 400
    assert client.patch("/hub/api/users/alice", {}, format="json").status_code == 400


def test_user_cannot_make_self_admin(alice, api_client_for):
    response = api_client_for(alice).patch("/hub/api/users/alice", {"admin": True}, format="json")
    assert response.status_code == 403


def test_delete_user(admin, carol, api_client_for):
    assert api_client_for(admin).delete("/hub/api/users/carol").status_code == 204
    assert not User.objects.filter(username="carol").exists()
    assert api_client_for(admin).delete("/hub/api/users/carol").status_code == 404


def test_delete_user_stops_running_servers_first(admin, carol, api_client_for):
    ServerFactory(user=carol, state=Server.State.RUNNING)  # no process: empty spawner state
    assert api_client_for(admin).delete("/hub/api/users/carol").status_code == 204
    assert not Server.objects.exists()


def test_user_cannot_delete_others(alice, bob, api_client_for):
    assert api_client_for(alice).delete("/hub/api/users/bob").status_code == 403


def test_oversize_body_is_413(admin, api_client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = {"usernames": ["x" * 10 for _ in range(200)]}
    response = api_client_for(admin).post("/hub/api/users", body, format="json")
    assert response.status_code == 413
    assert response.json()["status"] == 413
