"""/users/{name}/tokens: list, create (token shown once), read, revoke."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_create_token_returns_it_once(alice, api_client_for):
    client = api_client_for(alice)
    response = client.post(
        "/hub/api/users/alice/tokens",
        {"note": "laptop", "expires_in": 3600, "scopes": ["read:users!user=alice"]},
        format="json",
    )
    assert response.status_code == 201
    model = response.json()
    assert model["token"].startswith("hub_")
    assert model["user"] == "alice"
    assert model["note"] == "laptop"
    assert model["expires_at"].endswith("Z")
    assert "read:users!user=alice" in model["scopes"]
    assert "servers!user=alice" not in model["scopes"]
    listed = client.get(f"/hub/api/users/alice/tokens/{model['id']}").json()
    assert "token" not in listed
    assert listed["note"] == "laptop"


def test_created_token_works_with_its_scopes_only(alice, api_client_for):
    raw = (
        api_client_for(alice)
        .post("/hub/api/users/alice/tokens", {"scopes": ["read:users!user=alice"]}, format="json")
        .json()["token"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    assert client.get("/hub/api/users/alice").status_code == 200
    assert client.post("/hub/api/users/alice/server").status_code == 403


def test_requesting_scopes_the_owner_lacks_is_403(alice, api_client_for):
    response = api_client_for(alice).post(
        "/hub/api/users/alice/tokens", {"scopes": ["admin:users"]}, format="json"
    )
    assert response.status_code == 403
    assert ApiToken.objects.filter(user=alice).count() == 1  # only the fixture's


def test_restricted_token_cannot_mint_an_inherit_token(alice, api_client_for):
    client = api_client_for(alice, ["tokens!user=alice"])
    assert client.post("/hub/api/users/alice/tokens", {}, format="json").status_code == 403


def test_unknown_scope_is_400_and_unknown_role_403(alice, api_client_for):
    client = api_client_for(alice)
    assert (
        client.post("/hub/api/users/alice/tokens", {"scopes": ["fly"]}, format="json").status_code
        == 400
    )
    assert (
        client.post("/hub/api/users/alice/tokens", {"roles": ["king"]}, format="json").status_code
        == 403
    )


def test_roles_are_resolved_to_scopes(alice, api_client_for):
    model = (
        api_client_for(alice)
        .post("/hub/api/users/alice/tokens", {"roles": ["server"]}, format="json")
        .json()
    )
    assert "users:activity!user=alice" in model["scopes"]


@pytest.mark.parametrize("body", [[], {"expires_in": "soon"}, {"expires_in": -1}, {"scopes": "x"}])
def test_malformed_token_request_is_400(alice, api_client_for, body):
    response = api_client_for(alice).post("/hub/api/users/alice/tokens", body, format="json")
    assert response.status_code == 400


def test_list_and_revoke(alice, api_client_for):
    client = api_client_for(alice)
    created = client.post("/hub/api/users/alice/tokens", {"note": "tmp"}, format="json").json()
    listed = client.get("/hub/api/users/alice/tokens").json()["api_tokens"]
    assert {t["note"] for t in listed} == {"test", "tmp"}
    assert client.delete(f"/hub/api/users/alice/tokens/{created['id']}").status_code == 204
    assert client.get(f"/hub/api/users/alice/tokens/{created['id']}").status_code == 404
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"token {created['token']}")
    assert revoked.get("/hub/api/user").status_code == 403


@pytest.mark.parametrize("token_id", ["a999999", "b1", "x", "a"])
def test_unknown_token_id_is_404(alice, api_client_for, token_id):
    assert api_client_for(alice).get(f"/hub/api/users/alice/tokens/{token_id}").status_code == 404


def test_other_users_tokens_are_invisible(alice, bob, api_client_for):
    alice_client = api_client_for(alice)
    created = alice_client.post("/hub/api/users/alice/tokens", {}, format="json").json()
    bob_client = api_client_for(bob)
    assert bob_client.get("/hub/api/users/alice/tokens").status_code == 403
    assert bob_client.delete(f"/hub/api/users/alice/tokens/{created['id']}").status_code == 403
    # bob's own path cannot reach alice's token either
    assert bob_client.delete(f"/hub/api/users/bob/tokens/{created['id']}").status_code == 404


def test_admin_creates_token_for_user_with_default_note(admin, alice, api_client_for):
    response = api_client_for(admin).post("/hub/api/users/alice/tokens", format="json")
    assert response.status_code == 201
    assert response.json()["note"] == "Requested via api by user admin"
