"""The router against the real hub (pytest-django live server): full table,
incremental sync, lookups and activity, with small real backends."""

from __future__ import annotations

import json

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
def backends():
    started: list[Running] = []

    def start(name: str) -> Running:
        started.append(Running(make_backend(name)))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def hub_router(live_hub):
    routers = []

    def start(*extra: str):
        routers.append(
            launch_router(
                live_hub.url, settings.HUB_ROUTER_TOKEN, extra=list(extra), hub_wakes=True
            )
        )
        return routers[-1]

    yield start
    for router in routers:
        router.stop()


def seen_by(router, path: str) -> str:
    """'backend:<name>' when a backend answered, else 'hub:<status>'."""
    response = requests.get(router.url + path, allow_redirects=False, timeout=10)
    try:
        return "backend:" + json.loads(response.text)["who"]
    except (ValueError, KeyError, TypeError):
        return f"hub:{response.status_code}"


def set_running(server: Server, url: str) -> None:
    Server.objects.filter(pk=server.pk).update(
        state=Server.State.RUNNING, url=url, changed=timezone.now()
    )


def set_stopped(server: Server) -> None:
    Server.objects.filter(pk=server.pk).update(
        state=Server.State.STOPPED, url="", changed=timezone.now()
    )


def test_running_server_is_reached_and_stop_sends_traffic_to_the_hub(alice, backends, hub_router):
    backend = backends("alice")
    server = Server.objects.create(user=alice, state=Server.State.RUNNING, url=backend.url)
    router = hub_router()
    assert seen_by(router, "/user/alice/api/status") == "backend:alice"
    set_stopped(server)
    wait_for(
        lambda: seen_by(router, "/user/alice/api/status").startswith("hub:"),
        timeout=3,
        what="the stopped server's traffic to reach the hub",
    )


def test_server_started_after_the_router_is_reached_on_the_first_request(
    alice, backends, hub_router
):
    router = hub_router()
    backend = backends("alice-new")
    Server.objects.create(user=alice, state=Server.State.RUNNING, url=backend.url)
    assert seen_by(router, "/user/alice/lab") == "backend:alice-new"


def test_named_server_and_default_server_are_told_apart(alice, backends, hub_router):
    default, named = backends("default"), backends("named")
    Server.objects.create(user=alice, state=Server.State.RUNNING, url=default.url)
    Server.objects.create(user=alice, name="gpu", state=Server.State.RUNNING, url=named.url)
    router = hub_router()
    assert seen_by(router, "/user/alice/gpu/lab") == "backend:named"
    assert seen_by(router, "/user/alice/lab") == "backend:default"


def test_another_users_route_is_never_used(alice, bob, backends, hub_router):
    backend = backends("alice")
    Server.objects.create(user=alice, state=Server.State.RUNNING, url=backend.url)
    router = hub_router()
    assert seen_by(router, "/user/bob/lab") != "backend:alice"


def test_server_moved_to_a_new_port_is_reached_there_only(alice, backends, hub_router):
    old, new = backends("old"), backends("new")
    server = Server.objects.create(user=alice, state=Server.State.RUNNING, url=old.url)
    router = hub_router()
    assert seen_by(router, "/user/alice/") == "backend:old"
    set_running(server, new.url)
    wait_for(lambda: seen_by(router, "/user/alice/") == "backend:new", timeout=3, what="new port")
    assert {seen_by(router, "/user/alice/x") for _ in range(20)} == {"backend:new"}


def test_restarted_router_gets_its_table_back_from_the_hub(alice, backends, hub_router):
    backend = backends("alice")
    Server.objects.create(user=alice, state=Server.State.RUNNING, url=backend.url)
    first = hub_router()
    assert seen_by(first, "/user/alice/") == "backend:alice"
    first.stop()
    second = hub_router()
    assert seen_by(second, "/user/alice/") == "backend:alice"


def test_router_activity_reaches_the_servers_last_activity(alice, backends, hub_router):
    backend = backends("alice")
    server = Server.objects.create(user=alice, state=Server.State.RUNNING, url=backend.url)
    router = hub_router("--activity-interval", "0.2")
    before = timezone.now()
    assert seen_by(router, "/user/alice/api/status") == "backend:alice"
    wait_for(
        lambda: (Server.objects.get(pk=server.pk).last_activity or before) > before,
        timeout=5,
        what="activity to reach the hub",
    )
