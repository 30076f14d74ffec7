"""Which server a /user/<name>/<rest> path addresses, read in one query
(servers/addressing.py) for the hub's answer to a path the router has no
route for: it must agree with the model-based _server_for_path."""

from __future__ import annotations

import pytest

from servers.addressing import Addressed, addressed_server
from servers.models import Server
from servers.views import _server_for_path
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db

State = Server.State


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.mark.parametrize(
    ("servers", "rest", "expected"),
    [
        ({}, "api", ("", State.STOPPED)),
        ({"": State.STARTING}, "api/status", ("", State.STARTING)),
        ({"": State.RUNNING, "box": State.STARTING}, "box/api", ("box", State.STARTING)),
        ({"": State.STARTING}, "box/api", ("", State.STARTING)),  # no server named box
        ({"box": State.FAILED}, "box", ("box", State.FAILED)),
        ({"box": State.RUNNING}, "api", ("", State.STOPPED)),
        ({"api": State.RUNNING}, "api", ("api", State.RUNNING)),  # a server named like a path
    ],
)
def test_the_addressed_server_is_the_one_the_models_say(alice, servers, rest, expected):
    for name, state in servers.items():
        ServerFactory(user=alice, name=name, state=state)
    found = addressed_server("alice", rest)
    assert found == Addressed(alice.pk, *expected)
    by_models = _server_for_path(alice, rest)
    assert (by_models.name, by_models.state) == expected


def test_a_named_server_is_not_addressed_when_named_servers_are_off(alice, settings):
    settings.HUB_ALLOW_NAMED_SERVERS = False
    ServerFactory(user=alice, name="box", state=State.RUNNING)
    assert addressed_server("alice", "box/api") == Addressed(alice.pk, "", State.STOPPED)


def test_no_such_user_addresses_nothing(alice):
    ServerFactory(user=alice, state=State.RUNNING)
    assert addressed_server("bob", "api") is None
    assert addressed_server("Alice", "api") is None
