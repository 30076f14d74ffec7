"""Bob's credentials on alice's server, through the real router, in path and
subdomain mode: his API token, his hub session cookie and the OAuth cookie his
own server gave him are each refused on alice's HTTP API, kernel websocket and
terminal websocket (issue 8, "Isolation in path and subdomain mode")."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
import websockets
from django.conf import settings
from django.test import Client

from tests.live import launch_router

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DOMAIN = "hub.example.org"


@dataclass
class Site:
    """Where a user's server is, as a browser sees it, and the router's port
    every request really goes to (the Host header carries the name)."""

    port: int
    subdomains: bool

    def origin(self, user: str) -> str:
        host = f"{user}.{DOMAIN}" if self.subdomains else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def hub(self) -> str:
        return f"http://{DOMAIN if self.subdomains else '127.0.0.1'}:{self.port}"

    def request(self, session, method: str, url: str, **kwargs) -> requests.Response:
        parts = urlsplit(url)
        target = f"http://127.0.0.1:{self.port}{parts.path}"
        target += f"?{parts.query}" if parts.query else ""
        headers = {"Host": parts.netloc, **kwargs.pop("headers", {})}
        return session.request(
            method, target, headers=headers, allow_redirects=False, timeout=60, **kwargs
        )


@pytest.fixture(params=["path", "subdomain"])
def site(request, live_hub, settings):
    extra = ["--subdomain-host", DOMAIN] if request.param == "subdomain" else []
    router = launch_router(live_hub.url, settings.HUB_ROUTER_TOKEN, extra=extra, hub_wakes=True)
    if extra:
        settings.HUB_SUBDOMAIN_HOST = DOMAIN
        settings.HUB_PUBLIC_URL = f"http://{DOMAIN}:{router.port}"
    else:
        settings.HUB_PUBLIC_URL = router.url
    yield Site(port=router.port, subdomains=bool(extra))
    router.stop()


def hub_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def oauth_cookies(site: Site, user) -> dict[str, str]:
    """The cookies USER's own server sets after the real OAuth flow."""
    on_server, on_hub = requests.Session(), requests.Session()
    hub_host = urlsplit(site.hub()).hostname
    on_hub.cookies.set(settings.SESSION_COOKIE_NAME, hub_cookie(user), domain=hub_host)
    login = site.request(on_server, "GET", f"{site.origin(user.username)}/user/{user.username}/")
    while login.status_code == 302:
        location = login.headers["Location"]
        if location.startswith("/"):
            base = site.hub() if location.startswith("/hub/") else site.origin(user.username)
            location = base + location
        jar = on_hub if urlsplit(location).path.startswith("/hub/") else on_server
        login = site.request(jar, "GET", location)
    assert login.status_code == 200, login.text[:300]
    cookies = {c.name: c.value for c in on_server.cookies if c.name.startswith("jupyterhub-user")}
    assert cookies, "the server set no OAuth cookie"
    return cookies


def attacks(site: Site, bob, bob_token: str) -> dict[str, dict[str, str]]:
    """Each of bob's credentials as request headers, the OAuth cookie both
    under its own name and renamed to alice's cookie's name."""
    cookies = oauth_cookies(site, bob)
    value = next(iter(cookies.values()))
    as_cookie = lambda pairs: {"Cookie": "; ".join(f"{k}={v}" for k, v in pairs.items())}  # noqa: E731
    return {
        "bob's API token": {"Authorization": f"token {bob_token}"},
        "bob's hub session": as_cookie({settings.SESSION_COOKIE_NAME: hub_cookie(bob)}),
        "bob's OAuth cookie": as_cookie(cookies),
        "bob's OAuth cookie renamed": as_cookie({"jupyterhub-user-alice": value}),
    }


async def handshake_status(url: str, headers: dict[str, str], port: int) -> int:
    """The HTTP status of a websocket handshake (101 when it was accepted)."""
    try:
        async with websockets.connect(
            url, additional_headers=headers, host="127.0.0.1", port=port, open_timeout=30
        ):
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


def test_another_users_credentials_are_refused_everywhere_on_alices_server(
    alice, bob, token_for, start_server, site
):
    start_server(alice)
    start_server(bob)
    alice_token, base = token_for(alice), f"{site.origin('alice')}/user/alice"
    own = {"Authorization": f"token {alice_token}"}
    session = requests.Session()
    kernel = site.request(session, "POST", f"{base}/api/kernels", headers=own, json={})
    terminal = site.request(session, "POST", f"{base}/api/terminals", headers=own, json={})
    assert (kernel.status_code, terminal.status_code) == (201, 200), (kernel.text, terminal.text)
    ws = base.replace("http", "ws", 1)
    kernel_ws = f"{ws}/api/kernels/{kernel.json()['id']}/channels?session_id={uuid.uuid4().hex}"
    terminal_ws = f"{ws}/terminals/websocket/{terminal.json()['name']}"
    # alice herself gets in everywhere: the refusals below are about who asks
    assert asyncio.run(handshake_status(kernel_ws, own, site.port)) == 101
    assert asyncio.run(handshake_status(terminal_ws, own, site.port)) == 101
    outcomes = {}
    for name, headers in attacks(site, bob, token_for(bob)).items():
        http = site.request(requests.Session(), "GET", f"{base}/api/status", headers=headers)
        outcomes[name] = (
            http.status_code,
            asyncio.run(handshake_status(kernel_ws, headers, site.port)),
            asyncio.run(handshake_status(terminal_ws, headers, site.port)),
        )
    refused = {name: all(code in (302, 403) for code in codes) for name, codes in outcomes.items()}
    assert all(refused.values()), outcomes
