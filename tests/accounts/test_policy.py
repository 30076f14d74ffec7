"""Who may sign in, whatever the method: the pure decision, then at the login form."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from accounts.policy import Policy, decide
from tests.conftest import PASSWORD

OPEN = Policy.build()
USERS = Policy.build(allowed_users=["Alice", "bob"])
GROUPS = Policy.build(allowed_groups=["researchers"])
EMPTY = Policy.build(allowed_users=[])
BLOCKED = Policy.build(blocked_users=["mallory"], admin_users=["mallory", "root2"])


@pytest.mark.parametrize(
    ("policy", "username", "groups", "is_admin", "allowed", "make_admin"),
    [
        (OPEN, "anyone", [], False, True, False),
        (USERS, "alice", [], False, True, False),
        (USERS, "ALICE", [], False, True, False),  # one name, whatever the case
        (USERS, "carol", [], False, False, False),
        (USERS, "carol", [], True, True, False),  # admins are always allowed
        (GROUPS, "carol", ["researchers"], False, True, False),
        (GROUPS, "carol", ["other"], False, False, False),
        (GROUPS, "carol", [], False, False, False),  # left the group: refused
        (EMPTY, "alice", [], False, False, False),  # an empty allow-list fails closed
        (BLOCKED, "mallory", [], True, False, False),  # blocked beats admin
        (BLOCKED, "root2", [], False, True, True),
    ],
)
def test_decide(policy, username, groups, is_admin, allowed, make_admin):
    verdict = decide(username, groups, is_admin=is_admin, policy=policy)
    assert (verdict.allowed, verdict.make_admin) == (allowed, make_admin)


def log_in(username: str) -> tuple[int, bool]:
    client = Client()
    response = client.post("/hub/login", {"login": username, "password": PASSWORD})
    return response.status_code, "_auth_user_id" in client.session


@pytest.mark.django_db
def test_a_user_not_on_the_allow_list_is_refused_at_login(settings, fresh_limits, alice, carol):
    settings.HUB_ALLOWED_USERS = ["alice"]
    assert log_in("alice") == (302, True)
    assert log_in("carol") == (403, False)


@pytest.mark.django_db
def test_a_blocked_user_is_refused_at_login(settings, fresh_limits, alice):
    settings.HUB_BLOCKED_USERS = ["Alice"]
    assert log_in("alice") == (403, False)


@pytest.mark.django_db
def test_allowed_groups_follow_hub_membership(settings, fresh_limits, alice, team):
    settings.HUB_ALLOWED_GROUPS = ["team"]
    assert log_in("alice")[1]
    team.members.remove(alice)
    assert log_in("alice") == (403, False)


@pytest.mark.django_db
def test_admin_users_become_admins_at_login_even_unapproved(settings, fresh_limits, carol):
    settings.HUB_ADMIN_USERS = ["carol"]
    User.objects.filter(pk=carol.pk).update(is_approved=False)
    assert log_in("carol") == (302, True)
    carol.refresh_from_db()
    assert carol.is_superuser and carol.is_staff and carol.is_approved


@pytest.mark.django_db
def test_a_name_the_policy_refuses_cannot_sign_up(settings, fresh_limits):
    settings.HUB_ALLOWED_USERS = ["alice"]
    data = {"username": "Mallory", "password1": PASSWORD, "password2": PASSWORD}
    response = Client().post("/hub/signup", data)
    assert b"not allowed to sign up" in response.content
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.django_db
def test_a_sign_up_in_capitals_is_the_existing_person(fresh_limits, alice):
    data = {"username": "ALICE", "password1": PASSWORD, "password2": PASSWORD}
    Client().post("/hub/signup", data)
    assert User.objects.filter(username__iexact="alice").count() == 1


# --- leaving an allowed group -------------------------------------------------


@pytest.mark.django_db
def test_a_user_who_left_the_allowed_group_cannot_start(settings, alice, team, api_client_for):
    settings.HUB_ALLOWED_GROUPS = ["team"]
    team.members.remove(alice)
    response = api_client_for(alice).post("/hub/api/users/alice/server")
    assert response.status_code == 403
    assert "not allowed" in response.json()["message"]
    assert not alice.servers.filter(state="starting").exists()


@pytest.mark.django_db
def test_a_blocked_user_cannot_start(settings, alice, api_client_for):
    settings.HUB_BLOCKED_USERS = ["alice"]
    assert api_client_for(alice).post("/hub/api/users/alice/server").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(("operator_asks", "stopping"), [(True, True), (False, False)])
def test_leaving_the_allowed_group_stops_running_servers_when_the_operator_asks(
    settings, alice, team, operator_asks, stopping, django_capture_on_commit_callbacks
):
    from servers.models import Server
    from tests.factories import ServerFactory

    settings.HUB_ALLOWED_GROUPS = ["team"]
    settings.HUB_STOP_SERVERS_WHEN_REFUSED = operator_asks
    server = ServerFactory(user=alice, state=Server.State.RUNNING, url="http://127.0.0.1:1")
    with django_capture_on_commit_callbacks(execute=False):
        team.members.remove(alice)
    server.refresh_from_db()
    assert (server.state == Server.State.STOPPING) is stopping
