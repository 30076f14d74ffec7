"""The hub's OAuth2 provider, spoken the way jupyterhub-singleuser speaks it:
authorize in the browser's hub session, then a form-encoded code exchange
authenticated by the server's token as client secret, with PKCE S256."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts import identity
from accounts import scopes as sc
from accounts.models import ApiToken, OAuthCode, User
from servers import services as server_services
from servers.models import Server

AUTHORIZE = "/hub/api/oauth2/authorize"
TOKEN = "/hub/api/oauth2/token"
CALLBACK = "/user/alice/oauth_callback"

pytestmark = pytest.mark.django_db


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), computed as jupyterhub-singleuser does."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class ServerClient:
    server: Server
    client_id: str
    secret: str  # the server's API token


@pytest.fixture
def alice_server(alice) -> ServerClient:
    """Alice's server with the credentials a spawn issues (token + OAuth client)."""
    server = Server.objects.create(user=alice, name="")
    secret = server_services.issue_credentials(server)
    return ServerClient(server=server, client_id=server.client_id, secret=secret)


def browser(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def authorize_params(sc_: ServerClient, challenge: str = "", **extra: str) -> dict[str, str]:
    params = {
        "client_id": sc_.client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "state": "st4te",
    }
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return params | extra


def get_code(client: Client, sc_: ServerClient, challenge: str = "") -> str:
    response = client.get(AUTHORIZE, authorize_params(sc_, challenge))
    assert response.status_code == 302, response.content
    location = urlsplit(response["Location"])
    assert location.path == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


def exchange(sc_: ServerClient, code: str, verifier: str = "", **overrides: str):
    body = {
        "client_id": sc_.client_id,
        "client_secret": sc_.secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
    }
    if verifier:
        body["code_verifier"] = verifier
    body |= overrides
    return Client().post(TOKEN, urlencode(body), content_type="application/x-www-form-urlencoded")


# --- the whole flow -------------------------------------------------------------


def test_owner_gets_a_token_that_opens_her_server(alice, alice_server):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    response = exchange(alice_server, code, verifier)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.SESSION_COOKIE_AGE
    assert "access:servers!server=alice/" in body["scope"].split()
    who = identity.resolve_token(body["access_token"])
    assert who is not None and who.user == alice
    assert who.has("access:servers", sc.Target(user="alice", server="alice/"))


def test_token_is_an_oauth_token_linked_to_client_and_session(alice, alice_server):
    client = browser(alice)
    verifier, challenge = pkce_pair()
    body = exchange(alice_server, get_code(client, alice_server, challenge), verifier).json()
    token = identity.resolve_token(body["access_token"]).token
    assert token.kind == ApiToken.Kind.OAUTH
    assert token.oauth_client.identifier == alice_server.client_id
    assert token.session_id == client.session[identity.SESSION_ID_KEY]
    assert token.expires_at is not None


def test_token_scopes_are_access_and_identify_only(alice, alice_server):
    verifier, challenge = pkce_pair()
    body = exchange(alice_server, get_code(browser(alice), alice_server, challenge), verifier)
    assert sorted(body.json()["scope"].split()) == [
        "access:servers!server=alice/",
        "read:users:groups!user=alice",
        "read:users:name!user=alice",
    ]


def test_code_is_stored_hashed(alice, alice_server):
    code = get_code(browser(alice), alice_server, pkce_pair()[1])
    stored = OAuthCode.objects.get()
    assert stored.code_hash != code
    assert code not in stored.code_hash


def test_flow_without_pkce_still_works(alice, alice_server):
    # JupyterHub 5 clients send no challenge; PKCE is not required (oauth_require_pkce=False)
    response = exchange(alice_server, get_code(browser(alice), alice_server))
    assert response.status_code == 200


def test_server_token_in_authorization_header_authenticates_the_client(alice, alice_server):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    body = {
        "client_id": alice_server.client_id,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    response = Client().post(
        TOKEN,
        urlencode(body),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"token {alice_server.secret}",
    )
    assert response.status_code == 200, response.content


# --- token endpoint refusals ---------------------------------------------------------


def test_wrong_verifier_is_rejected_with_400(alice, alice_server):
    _verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    response = exchange(alice_server, code, pkce_pair()[0])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_missing_verifier_is_rejected_when_a_challenge_was_sent(alice, alice_server):
    code = get_code(browser(alice), alice_server, pkce_pair()[1])
    response = exchange(alice_server, code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_reused_code_is_rejected_with_400(alice, alice_server):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    assert exchange(alice_server, code, verifier).status_code == 200
    again = exchange(alice_server, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_failed_exchange_uses_the_code_up(alice, alice_server):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    assert exchange(alice_server, code, "x" * 43).status_code == 400
    assert exchange(alice_server, code, verifier).status_code == 400


def test_expired_code_is_rejected_with_400(alice, alice_server):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    later = timezone.now() + OAuthCode.CODE_LIFETIME + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        response = exchange(alice_server, code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_forged_code_is_rejected_with_400(alice_server):
    response = exchange(alice_server, secrets.token_urlsafe(32), pkce_pair()[0])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_wrong_secret_is_rejected_with_401(alice, alice_server):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    response = exchange(alice_server, code, verifier, client_secret="hub_" + "x" * 40)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert exchange(alice_server, code, verifier).status_code == 200  # code not burned


def test_another_users_token_is_not_a_client_secret(alice, alice_server, token_for):
    verifier, challenge = pkce_pair()
    code = get_code(browser(alice), alice_server, challenge)
    response = exchange(alice_server, code, verifier, client_secret=token_for(alice))
    assert response.status_code == 401


def test_unknown_client_is_rejected_at_the_token_endpoint_with_401(alice, alice_server):
    code = get_code(browser(alice), alice_server)
    response = exchange(alice_server, code, client_id="jupyterhub-user-mallory")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_code_of_another_client_is_rejected(alice, bob, alice_server):
    bob_server = Server.objects.create(user=bob, name="")
    bob_secret = server_services.issue_credentials(bob_server)
    code = get_code(browser(alice), alice_server)
    response = exchange(
        alice_server, code, client_id=bob_server.client_id, client_secret=bob_secret
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_mismatched_redirect_uri_at_exchange_is_rejected_with_400(alice, alice_server):
    code = get_code(browser(alice), alice_server)
    response = exchange(alice_server, code, redirect_uri="/user/alice/elsewhere")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_wrong_grant_type_is_rejected(alice, alice_server):
    code = get_code(browser(alice), alice_server)
    response = exchange(alice_server, code, grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_json_body_is_rejected(alice_server):
    response = Client().post(TOKEN, {"client_id": alice_server.client_id}, "application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_oversize_body_is_rejected_with_400(alice_server, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = urlencode({"client_id": alice_server.client_id, "code": "x" * 4096})
    response = Client().post(TOKEN, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token_endpoint_needs_no_csrf_token(alice, alice_server):
    code = get_code(browser(alice), alice_server)
    body = urlencode(
        {
            "client_id": alice_server.client_id,
            "client_secret": alice_server.secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
        }
    )
    response = Client(enforce_csrf_checks=True).post(
        TOKEN, body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200


def test_token_endpoint_refuses_get(alice_server):
    assert Client().get(TOKEN).status_code == 405


def test_exchange_fails_when_the_user_lost_access_meanwhile(alice, alice_server):
    code = get_code(browser(alice), alice_server)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = exchange(alice_server, code)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# --- authorize endpoint ----------------------------------------------------------------


def test_anonymous_is_redirected_to_login_with_the_authorize_url_as_next(alice_server):
    params = authorize_params(alice_server, pkce_pair()[1])
    response = browser(None).get(AUTHORIZE, params)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/hub/login"
    next_url = urlsplit(parse_qs(location.query)["next"][0])
    assert next_url.path == AUTHORIZE
    assert {k: v[0] for k, v in parse_qs(next_url.query).items()} == params
    assert not OAuthCode.objects.exists()


def test_unapproved_user_is_sent_to_login(alice_server):
    pending = User.objects.create(username="pending", is_approved=False)
    response = browser(pending).get(AUTHORIZE, authorize_params(alice_server))
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/hub/login"


@pytest.mark.parametrize("intruder", ["bob", "carol"])
def test_other_users_cannot_authorize_alices_server(request, alice_server, intruder):
    user = request.getfixturevalue(intruder)
    response = browser(user).get(AUTHORIZE, authorize_params(alice_server, pkce_pair()[1]))
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert not OAuthCode.objects.exists()


def test_admin_may_authorize_alices_server(admin, alice_server):
    verifier, challenge = pkce_pair()
    response = exchange(alice_server, get_code(browser(admin), alice_server, challenge), verifier)
    assert response.status_code == 200
    who = identity.resolve_token(response.json()["access_token"])
    assert who.user == admin
    assert who.has("access:servers", sc.Target(user="alice", server="alice/"))
    assert not who.has("access:servers", sc.Target(user="bob", server="bob/"))


def test_unknown_client_is_rejected_with_400(alice, alice_server):
    params = authorize_params(alice_server, client_id="jupyterhub-user-mallory")
    response = browser(alice).get(AUTHORIZE, params)
    assert response.status_code == 400
    assert not response.has_header("Location")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "/user/bob/oauth_callback",
        "https://evil.example/user/alice/oauth_callback",
        "//evil.example/user/alice/oauth_callback",
        "/user/alice/oauth_callback/../../bob/oauth_callback",
    ],
)
def test_mismatched_redirect_uri_is_rejected_with_400(alice, alice_server, redirect_uri):
    params = authorize_params(alice_server, redirect_uri=redirect_uri)
    response = browser(alice).get(AUTHORIZE, params)
    assert response.status_code == 400
    assert not response.has_header("Location")  # never an open redirect


def test_missing_redirect_uri_uses_the_registered_one(alice, alice_server):
    params = authorize_params(alice_server)
    del params["redirect_uri"]
    response = browser(alice).get(AUTHORIZE, params)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == CALLBACK


def test_plain_pkce_method_is_sent_back_as_an_error(alice, alice_server):
    params = authorize_params(alice_server, code_challenge="a" * 43, code_challenge_method="plain")
    response = browser(alice).get(AUTHORIZE, params)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == CALLBACK
    query = parse_qs(location.query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st4te"]
    assert "code" not in query


def test_unsupported_response_type_is_sent_back_as_an_error(alice, alice_server):
    params = authorize_params(alice_server, response_type="token")
    response = browser(alice).get(AUTHORIZE, params)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query)["error"] == ["unsupported_response_type"]


def test_oversize_parameter_is_rejected(alice, alice_server):
    params = authorize_params(alice_server, state="s" * 5000)
    response = browser(alice).get(AUTHORIZE, params)
    assert response.status_code == 400


def test_client_of_a_stopped_server_is_gone(alice, alice_server):
    server_services.revoke_credentials(alice_server.server)
    response = browser(alice).get(AUTHORIZE, authorize_params(alice_server))
    assert response.status_code == 400


def test_requested_scopes_beyond_the_clients_allowed_scopes_are_not_granted(alice, alice_server):
    params = authorize_params(alice_server, scope="admin:users read:users")
    response = browser(alice).get(AUTHORIZE, params)
    code = parse_qs(urlsplit(response["Location"]).query)["code"][0]
    granted = exchange(alice_server, code).json()["scope"].split()
    assert "admin:users" not in granted
    assert not any(s.startswith("read:users!") or s == "read:users" for s in granted)


# --- logout -----------------------------------------------------------------------------


def test_logout_revokes_the_sessions_oauth_tokens(alice, alice_server, token_for):
    client = browser(alice)
    verifier, challenge = pkce_pair()
    body = exchange(alice_server, get_code(client, alice_server, challenge), verifier).json()
    personal = token_for(alice)
    client.logout()
    assert identity.resolve_token(body["access_token"]) is None
    assert identity.resolve_token(personal) is not None  # only the session's OAuth tokens go


def test_logout_leaves_other_sessions_tokens_alone(alice, alice_server):
    laptop, phone = browser(alice), browser(alice)
    body = exchange(alice_server, get_code(phone, alice_server)).json()
    get_code(laptop, alice_server)
    laptop.logout()
    assert identity.resolve_token(body["access_token"]) is not None


def test_revoked_oauth_token_gets_403_from_hub_api_user(alice, alice_server):
    client = browser(alice)
    token = exchange(alice_server, get_code(client, alice_server)).json()["access_token"]
    headers = {"HTTP_AUTHORIZATION": f"token {token}"}
    before = Client().get("/hub/api/user", **headers)
    assert before.status_code == 200
    assert "access:servers!server=alice/" in before.json()["scopes"]
    client.logout()
    assert Client().get("/hub/api/user", **headers).status_code == 403
