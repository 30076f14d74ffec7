"""The real, unmodified `jupyterhub-singleuser` logging people in through the
hub's OAuth provider, without the router: the test plays the browser and
sends /hub/... to the hub and /user/... to the server, as the router would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from django.conf import settings
from django.test import Client

from accounts.models import ApiToken, User
from servers import services
from servers.models import Server
from servers.spawners import get_spawner
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@dataclass
class Browser:
    """A requests session that resolves redirects like a browser behind the
    router: /hub/... on the hub's origin, /user/... on the server's."""

    hub: str
    server: str
    http: requests.Session = field(default_factory=requests.Session)
    hops: list[str] = field(default_factory=list)

    def origin_for(self, path: str) -> str:
        return self.hub if path.startswith("/hub/") else self.server

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        url = urljoin(self.origin_for(path), path)
        for _ in range(10):
            response = self.http.request(method, url, allow_redirects=False, timeout=30, **kwargs)
            self.hops.append(urlsplit(url).path)
            if response.status_code not in (301, 302, 303, 307):
                return response
            method, kwargs = "GET", {}  # a redirected form post becomes a GET
            location = urlsplit(urljoin(url, response.headers["Location"]))
            target = location.path + (f"?{location.query}" if location.query else "")
            url = urljoin(self.origin_for(location.path), target)
        raise AssertionError(f"too many redirects: {self.hops}")

    def form_token(self, response: requests.Response) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
        assert match, f"no CSRF token in the page at {response.url}"
        return match.group(1)


def log_in(browser: Browser, user: User) -> Client:
    """Give the browser USER's hub cookie (path /hub/, as the hub sets it)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    host = urlsplit(browser.hub).hostname
    browser.http.cookies.set(settings.SESSION_COOKIE_NAME, cookie, domain=host, path="/hub/")
    return client


@pytest.fixture
def alice_server(alice, live_hub) -> Iterator[Server]:
    """Alice's default server, started on the LocalProcessSpawner and ready."""
    server = Server.objects.create(user=alice, name="", state=Server.State.STARTING)
    services.start_on_spawner(server.pk)
    server.refresh_from_db()
    assert server.state == Server.State.RUNNING, server.failure
    yield server
    server.refresh_from_db()
    if server.spawner_state:
        get_spawner().stop(server.spawner_state, grace=5)


def browser_for(live_hub, server: Server) -> Browser:
    return Browser(hub=live_hub.url, server=server.url)


def test_owner_gets_in_through_the_oauth_flow(alice, live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    log_in(browser, alice)
    page = browser.get("/user/alice/lab")
    assert page.status_code == 200
    assert "/hub/api/oauth2/authorize" in browser.hops
    assert "/user/alice/oauth_callback" in browser.hops
    status = browser.get("/user/alice/api/status")
    assert status.status_code == 200
    assert "started" in status.json()


def test_oauth_token_is_recorded_for_the_hub_session(alice, live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    log_in(browser, alice)
    assert browser.get("/user/alice/lab").status_code == 200
    token = ApiToken.objects.get(kind=ApiToken.Kind.OAUTH, user=alice)
    assert token.oauth_client.server_id == alice_server.pk
    assert token.session_id


def test_other_user_is_refused_at_authorize(bob, live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    log_in(browser, bob)
    response = browser.get("/user/alice/lab")
    assert response.status_code == 403
    assert browser.hops[-1] == "/hub/api/oauth2/authorize"
    assert not ApiToken.objects.filter(kind=ApiToken.Kind.OAUTH).exists()


def test_other_users_token_gets_403_from_the_server(bob, token_for, live_hub, alice_server):
    headers = {"Authorization": f"token {token_for(bob)}"}
    response = requests.get(f"{alice_server.url}/user/alice/api/status", headers=headers)
    assert response.status_code == 403


def test_admin_gets_in(admin, live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    log_in(browser, admin)
    assert browser.get("/user/alice/lab").status_code == 200
    assert browser.get("/user/alice/api/status").status_code == 200


def test_anonymous_browser_is_sent_to_log_in(live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    browser.get("/user/alice/lab")
    assert "/hub/api/oauth2/authorize" in browser.hops
    assert browser.hops[-1] == "/hub/login"


def test_api_request_without_the_server_cookie_gets_403_not_a_redirect(
    alice, live_hub, alice_server
):
    # jupyter-server's API handlers never redirect to log in (upstream
    # test_singleuser_auth): a browser gets in through a page such as /lab
    browser = browser_for(live_hub, alice_server)
    log_in(browser, alice)
    assert browser.get("/user/alice/api/status").status_code == 403
    assert browser.hops == ["/user/alice/api/status"]


def test_password_login_at_the_hub_completes_the_flow(alice, live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    login_page = browser.get("/user/alice/lab")
    assert browser.hops[-1] == "/hub/login"
    next_url = parse_qs(urlsplit(login_page.url).query)["next"][0]
    form = {"login": "alice", "password": PASSWORD, "csrfmiddlewaretoken": ""}
    form["csrfmiddlewaretoken"] = browser.form_token(login_page)
    lab = browser.post(f"/hub/login?{urlencode({'next': next_url})}", data=form)
    assert lab.status_code == 200
    assert browser.hops[-3:] == [
        "/hub/api/oauth2/authorize",
        "/user/alice/oauth_callback",
        "/user/alice/lab",
    ]
    assert browser.get("/user/alice/api/status").status_code == 200


def test_logout_page_revokes_the_token_the_server_holds(alice, live_hub, alice_server):
    browser = browser_for(live_hub, alice_server)
    log_in(browser, alice)
    assert browser.get("/user/alice/lab").status_code == 200
    token = ApiToken.objects.get(kind=ApiToken.Kind.OAUTH, user=alice)
    confirm = browser.get("/hub/logout")
    browser.post("/hub/logout", data={"csrfmiddlewaretoken": browser.form_token(confirm)})
    assert not ApiToken.objects.filter(pk=token.pk).exists()
