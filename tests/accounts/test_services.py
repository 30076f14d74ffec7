"""accounts.services: the rules the REST API's user and group views used to
apply themselves. A refused change changes nothing."""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import Group, User
from servers.models import Server
from tests.factories import GroupFactory, ServerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_users_with_one_bad_name_creates_none():
    with pytest.raises(services.AccountRefused, match="Invalid username: Bad Name"):
        services.create_users(["fine", "Bad Name"])
    assert not User.objects.filter(username="fine").exists()


def test_create_users_with_a_taken_name_creates_none():
    UserFactory(username="taken")
    with pytest.raises(services.AlreadyExists):
        services.create_users(["fresh", "taken"])
    assert not User.objects.filter(username="fresh").exists()


@pytest.mark.parametrize(
    ("new_name", "message"),
    [("bob", "already exists"), ("No Way", "Invalid username"), ("hub", "Invalid username")],
)
def test_a_refused_rename_keeps_the_old_name(alice, bob, new_name, message):
    with pytest.raises(services.AccountRefused, match=message):
        services.rename_user(alice, new_name)
    alice.refresh_from_db()
    assert alice.username == "alice"


def test_a_user_with_a_running_server_cannot_be_renamed(alice):
    ServerFactory(user=alice, state=Server.State.RUNNING)
    with pytest.raises(services.AccountRefused, match="Stop alice's servers"):
        services.rename_user(alice, "alicia")
    assert User.objects.filter(username="alice").exists()


def test_rename_moves_the_name(alice):
    services.rename_user(alice, "alicia")
    assert User.objects.get(pk=alice.pk).username == "alicia"


def test_create_groups_with_a_taken_name_creates_none(alice):
    GroupFactory(name="taken")
    with pytest.raises(services.AlreadyExists, match="Group taken already exists"):
        services.create_groups(["new", "taken"], members=[alice])
    assert not Group.objects.filter(name="new").exists()


@pytest.mark.parametrize(
    ("names", "properties", "message"),
    [(["Bad Group"], None, "Invalid group name"), (["ok"], ["not", "a dict"], "JSON dict")],
)
def test_create_groups_refuses_bad_input(names, properties, message):
    with pytest.raises(services.AccountRefused, match=message):
        services.create_groups(names, properties=properties)
    assert not Group.objects.filter(name__in=names).exists()


def test_create_groups_gives_each_the_members_and_properties(alice, bob):
    created = services.create_groups(["g1", "g2"], members=[alice, bob], properties={"k": 1})
    for group in created:
        assert set(group.members.values_list("username", flat=True)) == {"alice", "bob"}
        assert group.properties == {"k": 1}
