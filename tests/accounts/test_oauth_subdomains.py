"""The OAuth provider with per-user hosts (HUB_SUBDOMAIN_HOST): a server's
client is registered with its absolute callback on the user's host, and the
authorize/token round trip works across the two hosts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client

from accounts.models import OAuthClient
from servers import services as server_services
from servers.models import Server

pytestmark = pytest.mark.django_db
DOMAIN = "hub.example.org"
CALLBACK = f"https://alice.{DOMAIN}/user/alice/oauth_callback"


@pytest.fixture
def subdomains(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.HUB_PUBLIC_URL = f"https://{DOMAIN}"


@pytest.fixture
def credentials(alice, subdomains) -> tuple[Server, str]:
    server = Server.objects.create(user=alice, name="")
    return server, server_services.issue_credentials(server)


def authorize(user, server: Server, redirect_uri: str):
    client = Client(HTTP_HOST=DOMAIN)
    client.force_login(user)
    params = {"client_id": server.client_id, "redirect_uri": redirect_uri, "response_type": "code"}
    return client.get("/hub/api/oauth2/authorize", params)


def test_server_client_is_registered_with_the_absolute_user_host_callback(credentials):
    server, _ = credentials
    assert OAuthClient.objects.get(server=server).redirect_uri == CALLBACK


def test_client_callback_stays_relative_when_subdomains_are_off(alice, settings):
    settings.HUB_SUBDOMAIN_HOST = ""
    server = Server.objects.create(user=alice, name="")
    server_services.issue_credentials(server)
    assert OAuthClient.objects.get(server=server).redirect_uri == "/user/alice/oauth_callback"


def test_authorize_on_the_hub_sends_the_code_to_the_user_host(alice, credentials):
    server, secret = credentials
    response = authorize(alice, server, CALLBACK)
    assert response.status_code == 302, response.content
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    body = {
        "client_id": server.client_id,
        "client_secret": secret,
        "grant_type": "authorization_code",
        "code": parse_qs(location.query)["code"][0],
        "redirect_uri": CALLBACK,
    }
    token = Client().post(
        "/hub/api/oauth2/token", urlencode(body), content_type="application/x-www-form-urlencoded"
    )
    assert token.status_code == 200, token.content
    assert "access:servers!server=alice/" in token.json()["scope"].split()


@pytest.mark.parametrize(
    "redirect_uri",
    ["/user/alice/oauth_callback", f"https://bob.{DOMAIN}/user/alice/oauth_callback"],
)
def test_authorize_refuses_any_other_callback(alice, credentials, redirect_uri):
    server, _ = credentials
    response = authorize(alice, server, redirect_uri)
    assert response.status_code == 400
    assert "Location" not in response
