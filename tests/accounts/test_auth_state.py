"""JupyterHub's auth_state: encrypted at rest, shown only with admin:auth_state,
handed to the user's server."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from accounts import auth_state
from hubsite import signin
from servers import services as server_services
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

STATE = {"access_token": "upstream-access-123", "refresh_token": "r", "oauth_user": {"sub": "a"}}


@pytest.fixture
def keyed(settings):
    settings.HUB_AUTH_STATE = True
    settings.HUB_CRYPT_KEY = Fernet.generate_key().decode()


@pytest.fixture
def alice_with_state(keyed, alice):
    alice.encrypted_auth_state = auth_state.encrypt(STATE)
    alice.save()
    return alice


def test_auth_state_is_stored_encrypted(alice_with_state):
    assert "upstream-access-123" not in alice_with_state.encrypted_auth_state
    assert auth_state.decrypt(alice_with_state.encrypted_auth_state) == STATE


def test_a_rotated_key_still_reads_the_old_state(alice_with_state, settings):
    settings.HUB_CRYPT_KEY = Fernet.generate_key().decode() + ";" + settings.HUB_CRYPT_KEY
    assert auth_state.decrypt(alice_with_state.encrypted_auth_state) == STATE


def test_the_api_shows_auth_state_only_with_admin_auth_state(
    alice_with_state, api_client_for, admin
):
    with_scope = api_client_for(admin, ["admin:auth_state!user=alice", "read:users"])
    assert with_scope.get("/hub/api/users/alice").json()["auth_state"] == STATE
    without = api_client_for(admin, ["read:users"])
    assert "auth_state" not in without.get("/hub/api/users/alice").json()
    own = api_client_for(alice_with_state)  # a user's own token: no admin:auth_state
    assert "auth_state" not in own.get("/hub/api/users/alice").json()
    # and never in lists, as in JupyterHub
    listed = with_scope.get("/hub/api/users").json()
    assert all("auth_state" not in user for user in listed)


def test_the_users_server_gets_the_upstream_token_in_its_environment(alice_with_state):
    server = ServerFactory(user=alice_with_state)
    spec = server_services.build_spec(server, api_token="t")
    assert spec.environment["UPSTREAM_ACCESS_TOKEN"] == "upstream-access-123"


def test_no_token_reaches_the_server_when_auth_state_is_off(alice_with_state, settings):
    settings.HUB_AUTH_STATE = False
    spec = server_services.build_spec(ServerFactory(user=alice_with_state), api_token="t")
    assert "UPSTREAM_ACCESS_TOKEN" not in spec.environment


@pytest.mark.parametrize(
    ("key", "message"), [("", "needs HUB_CRYPT_KEY"), ("short", "32 url-safe base64")]
)
def test_auth_state_without_a_usable_key_stops_the_hub(key, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        signin.check_auth_state(True, key)
