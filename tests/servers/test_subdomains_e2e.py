"""Per-user hosts for real: the router with --subdomain-host, the hub with
HUB_SUBDOMAIN_HOST, alice's real jupyterhub-singleuser. Every request goes to
127.0.0.1 with the host name in the Host header (no DNS involved)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client

from tests.live import launch_router

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DOMAIN = "hub.example.org"


@pytest.fixture
def subdomain_router(live_hub, settings):
    router = launch_router(
        live_hub.url, settings.HUB_ROUTER_TOKEN, extra=["--subdomain-host", DOMAIN], hub_wakes=True
    )
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.HUB_PUBLIC_URL = f"http://{DOMAIN}:{router.port}"
    yield router
    router.stop()


def hub_browser(user) -> requests.Session:
    """A browser holding USER's hub login cookie, set by the hub's host only.
    (requests matches cookies against the Host header when one is given.)"""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    session.cookies.set(settings.SESSION_COOKIE_NAME, cookie, domain=DOMAIN, path="/hub/")
    return session


def get(session: requests.Session, url: str, port: int) -> requests.Response:
    """GET URL as a browser would, but sent to the router on 127.0.0.1."""
    parts = urlsplit(url)
    target = f"http://127.0.0.1:{port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return session.get(target, headers={"Host": parts.netloc}, allow_redirects=False)


def test_user_host_reaches_the_server_api(alice, start_server, subdomain_router):
    start_server(alice)
    port = subdomain_router.port
    response = get(requests.Session(), f"http://alice.{DOMAIN}:{port}/user/alice/api", port)
    assert response.status_code == 200, response.text
    assert "version" in response.json()


def test_oauth_login_goes_through_the_hub_host_and_back(alice, start_server, subdomain_router):
    start_server(alice)
    port = subdomain_router.port
    on_alice, on_hub = requests.Session(), hub_browser(alice)
    user_host, hub_host = f"http://alice.{DOMAIN}:{port}", f"http://{DOMAIN}:{port}"
    login = get(on_alice, f"{user_host}/user/alice/lab", port)
    assert login.status_code == 302
    assert login.headers["Location"].startswith(f"{hub_host}/hub/api/oauth2/authorize?")
    code = get(on_hub, login.headers["Location"], port)
    assert code.status_code == 302, code.text
    assert code.headers["Location"].startswith(f"{user_host}/user/alice/oauth_callback?code=")
    callback = get(on_alice, code.headers["Location"], port)
    assert callback.status_code == 302, callback.text
    assert settings.SESSION_COOKIE_NAME not in on_alice.cookies
    status = get(on_alice, f"{user_host}/user/alice/api/status", port)
    assert status.status_code == 200, status.text
    assert "started" in status.json()
