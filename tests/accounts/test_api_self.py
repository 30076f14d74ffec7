"""The endpoints jupyterhub-singleuser and clients call first: /, /info, /user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken
from servers.models import Server
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


def test_version_answers_without_credentials_with_and_without_slash():
    client = APIClient()
    for url in ("/hub/api", "/hub/api/"):
        response = client.get(url)
        assert response.status_code == 200
        assert response.json() == {"version": "6.1.1"}
        assert response["X-JupyterHub-Version"] == "6.1.1"


def test_info_needs_read_hub(alice, admin, api_client_for):
    assert api_client_for(alice).get("/hub/api/info").status_code == 403
    response = api_client_for(admin).get("/hub/api/info")
    assert response.status_code == 200
    assert response.json()["version"] == "6.1.1"
    assert {"python", "sys_executable", "authenticator", "spawner"} <= set(response.json())


def test_self_returns_the_owner_model_with_expanded_scopes(alice, api_client_for):
    response = api_client_for(alice).get("/hub/api/user")
    assert response.status_code == 200
    model = response.json()
    assert model["kind"] == "user"
    assert model["name"] == "alice"
    assert model["admin"] is False
    assert model["groups"] == ["team"]
    assert model["server"] is None
    assert model["servers"] == {}
    assert model["session_id"] is None
    assert model["token_id"].startswith("a")
    assert "access:servers!user=alice" in model["scopes"]
    assert "read:users!user=alice" in model["scopes"]
    assert model["scopes"] == sorted(model["scopes"])


def test_self_with_bearer_keyword(alice, token_for):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}")
    assert client.get("/hub/api/user").json()["name"] == "alice"


def test_self_of_admin_lists_admin_scopes(admin, api_client_for):
    model = api_client_for(admin).get("/hub/api/user").json()
    assert model["admin"] is True
    assert "admin:users" in model["scopes"]
    assert "list:users" in model["scopes"]


def test_self_of_server_token_identifies_owner_but_keeps_its_scopes(alice):
    server = ServerFactory(user=alice, name="")
    token, raw = services.issue_token(
        alice,
        scopes=["users:activity!user=alice", "access:servers!server=alice/"],
        kind=ApiToken.Kind.SERVER,
        check_owner=False,
    )
    ApiToken.objects.filter(pk=token.pk).update(server=server)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    model = client.get("/hub/api/user").json()
    assert model["name"] == "alice"
    assert model["groups"] == ["team"]
    assert sorted(model["scopes"]) == [
        "access:servers!server=alice/",
        "read:users:activity!user=alice",
        "users:activity!user=alice",
    ]
    assert "servers" not in model


def test_self_shows_running_default_server(alice, api_client_for):
    ServerFactory(user=alice, name="", state=Server.State.RUNNING, url="http://127.0.0.1:9")
    model = api_client_for(alice).get("/hub/api/user").json()
    assert model["server"] == "/user/alice/"
    assert model["servers"][""]["ready"] is True
    assert model["servers"][""]["url"] == "/user/alice/"
    assert "state" not in model["servers"][""]


@pytest.mark.parametrize(
    "header",
    ["token hub_forgedforgedforgedforgedforgedforgedfo", "token x", "bearer ", "token a b"],
)
def test_forged_token_is_rejected_with_403(alice, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/hub/api/user")
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert response["X-JupyterHub-Version"] == "6.1.1"


def test_missing_credentials_get_403(alice):
    response = APIClient().get("/hub/api/user")
    assert response.status_code == 403
    assert set(response.json()) == {"status", "message"}


def test_expired_token_is_rejected_with_403(alice):
    token, raw = services.issue_token(alice, note="old")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    assert client.get("/hub/api/user").status_code == 403


def test_token_of_inactive_user_is_rejected(alice, token_for):
    raw = token_for(alice)
    alice.is_active = False
    alice.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    assert client.get("/hub/api/user").status_code == 403


def test_session_login_identifies_without_token_id(alice):
    client = APIClient()
    client.force_login(alice)
    model = client.get("/hub/api/user").json()
    assert model["name"] == "alice"
    assert model["token_id"] is None
