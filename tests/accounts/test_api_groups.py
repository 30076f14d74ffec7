"""/groups: list, create, delete, members, properties."""

from __future__ import annotations

import pytest

from accounts.models import Group

pytestmark = pytest.mark.django_db
PAGINATED = "application/jupyterhub-pagination+json"


def test_admin_lists_groups(admin, alice, bob, api_client_for):
    response = api_client_for(admin).get("/hub/api/groups")
    assert response.status_code == 200
    assert response.json() == [
        {"kind": "group", "name": "team", "users": ["alice", "bob"], "properties": {}, "roles": []}
    ]
    page = api_client_for(admin).get("/hub/api/groups", HTTP_ACCEPT=PAGINATED).json()
    assert page["_pagination"]["total"] == 1


def test_user_cannot_list_groups(alice, api_client_for):
    assert api_client_for(alice).get("/hub/api/groups").status_code == 403


def test_group_filtered_scope_lists_only_that_group(admin, alice, token_for):
    Group.objects.create(name="other")
    from rest_framework.test import APIClient

    from accounts import services

    _, raw = services.issue_token(admin, scopes=["list:groups!group=team"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    assert [g["name"] for g in client.get("/hub/api/groups").json()] == ["team"]


def test_create_get_and_delete_group(admin, alice, api_client_for):
    client = api_client_for(admin)
    response = client.post("/hub/api/groups/lab", {"users": ["alice"]}, format="json")
    assert response.status_code == 201
    assert response.json()["users"] == ["alice"]
    assert client.post("/hub/api/groups/lab").status_code == 409
    assert client.get("/hub/api/groups/lab").json()["name"] == "lab"
    assert client.delete("/hub/api/groups/lab").status_code == 204
    assert client.get("/hub/api/groups/lab").status_code == 404


def test_bulk_create_groups(admin, api_client_for):
    client = api_client_for(admin)
    response = client.post("/hub/api/groups", {"groups": ["g1", "g2"]}, format="json")
    assert response.status_code == 201
    assert [g["name"] for g in response.json()] == ["g1", "g2"]
    assert client.post("/hub/api/groups", {"groups": ["g1"]}, format="json").status_code == 409


def test_invalid_group_name_or_unknown_member_is_400(admin, api_client_for):
    client = api_client_for(admin)
    assert client.post("/hub/api/groups/Bad%20Name").status_code == 400
    assert client.post("/hub/api/groups/ok", {"users": ["ghost"]}, format="json").status_code == 400
    assert not Group.objects.filter(name="ok").exists()


def test_members_add_and_remove(admin, alice, carol, api_client_for):
    client = api_client_for(admin)
    response = client.post("/hub/api/groups/team/users", {"users": ["carol"]}, format="json")
    assert response.status_code == 200
    assert response.json()["users"] == ["alice", "carol"]
    response = client.delete("/hub/api/groups/team/users", {"users": ["alice"]}, format="json")
    assert response.json()["users"] == ["carol"]
    response = client.post("/hub/api/groups/team/users", {"users": ["ghost"]}, format="json")
    assert response.status_code == 400


def test_properties_put(admin, alice, api_client_for):
    client = api_client_for(admin)
    response = client.put("/hub/api/groups/team/properties", {"gpu": True}, format="json")
    assert response.status_code == 200
    assert response.json()["properties"] == {"gpu": True}
    assert client.put("/hub/api/groups/team/properties", [1], format="json").status_code == 400


def test_plain_user_cannot_change_groups(alice, carol, api_client_for):
    client = api_client_for(alice)
    assert (
        client.post("/hub/api/groups/team/users", {"users": ["carol"]}, format="json").status_code
        == 403
    )
    assert client.delete("/hub/api/groups/team").status_code == 403
    assert client.post("/hub/api/groups/new").status_code == 403
