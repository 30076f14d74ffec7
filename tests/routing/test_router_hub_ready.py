"""Hub integration: the user's first click after "ready" reaches the server,
never the hub's "not running" page, even though the router had just cached
"no route" for that user while the server was starting."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from servers.models import Server
from tests.live import wait_for
from tests.routing.conftest import launch_router
from tests.routing.fakes import Running, make_backend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_backend():
    server = Running(make_backend("alice"))
    yield server
    server.stop()


@pytest.fixture
def hub_router(live_hub):
    router = launch_router(live_hub.url, settings.HUB_ROUTER_TOKEN, hub_wakes=True)
    yield router
    router.stop()


def browser_of(client, user) -> requests.Session:
    """A requests session carrying USER's hub login cookie, like a browser."""
    client.force_login(user)
    browser = requests.Session()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    browser.cookies.set(settings.SESSION_COOKIE_NAME, cookie, domain="127.0.0.1", path="/hub/")
    return browser


def set_state(server: Server, state: str, url: str) -> None:
    Server.objects.filter(pk=server.pk).update(state=state, url=url, changed=timezone.now())


def test_first_request_after_ready_reaches_the_server_not_the_hubs_page(
    client, alice, alice_backend, hub_router
):
    browser = browser_of(client, alice)
    server = Server.objects.create(user=alice, state=Server.State.STARTING)
    lab = hub_router.url + "/user/alice/lab"
    for _ in range(3):  # a few rounds: the race with the router's sync differs each time
        # While starting: the router has no route (and caches that), the browser
        # ends on the hub's pending page through the hub's redirects.
        pending = browser.get(lab, timeout=10)
        assert pending.status_code == 200
        assert "/hub/spawn-pending/alice" in pending.url
        set_state(server, Server.State.RUNNING, alice_backend.url)  # the spawner says ready
        first = browser.get(lab, timeout=10)  # the user's click, redirects followed
        assert first.status_code == 200
        assert first.json()["who"] == "alice"
        assert all(300 <= hop.status_code < 400 for hop in first.history)  # no page shown
        set_state(server, Server.State.STARTING, "")  # restart for the next round
        wait_for(
            lambda: browser.get(lab, allow_redirects=False, timeout=10).status_code == 302,
            timeout=5,
            what="the router to drop the route",
        )
