"""The audit log records sign-ins and failures, tokens, admin actions and
admin access to another user's server; the admin shows it read-only."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Group
from tests.accounts.test_oauth import AUTHORIZE, alice_server, authorize_params  # noqa: F401
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
Action = AuditEvent.Action


def events(action: str) -> list[tuple[str, str]]:
    return [(e.actor, e.target) for e in AuditEvent.objects.filter(action=action)]


def test_sign_in_and_sign_out_are_recorded_with_the_address(client, alice):
    client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    client.post("/hub/logout")
    assert events(Action.LOGIN) == [("alice", "")]
    assert events(Action.LOGOUT) == [("alice", "")]
    assert AuditEvent.objects.filter(action=Action.LOGIN).get().address == "127.0.0.1"


def test_failed_sign_in_records_the_name_tried_never_the_password(client, alice):
    client.post("/hub/login", {"login": "alice", "password": "wrong-password"})
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILED)
    assert event.target == "alice"
    assert "wrong-password" not in str(event.detail)


def test_token_creation_and_revocation_are_recorded(alice, admin, api_client_for):
    api = api_client_for(admin)
    created = api.post("/hub/api/users/alice/tokens", {"note": "ci"}, format="json").json()
    api.delete(f"/hub/api/users/alice/tokens/{created['id']}")
    assert ("", "alice") in events(Action.TOKEN_CREATED)
    assert events(Action.TOKEN_REVOKED) == [("admin", "alice")]


def test_admin_change_and_bulk_action_are_recorded(admin, alice):
    client = Client()
    client.force_login(admin)
    client.post(
        "/hub/admin/accounts/group/add/",
        {"name": "physics", "properties": "{}", "members": [alice.pk]},
    )
    assert Group.objects.filter(name="physics").exists()
    assert events(Action.ADMIN_CHANGE) == [("admin", "accounts.group:physics")]
    client.post(
        "/hub/admin/accounts/user/",
        {"action": "approve", "_selected_action": [alice.pk]},
    )
    event = AuditEvent.objects.get(action=Action.ADMIN_ACTION)
    assert (event.actor, event.detail["admin_action"]) == ("admin", "approve")


def test_admin_opening_another_users_server_is_recorded(admin, alice, alice_server):  # noqa: F811
    client = Client()
    client.force_login(admin)
    assert client.get(AUTHORIZE, authorize_params(alice_server)).status_code == 302
    assert events(Action.SERVER_ACCESS) == [("admin", "alice/")]


def test_owner_opening_own_server_is_not_an_audit_event(alice, alice_server):  # noqa: F811
    client = Client()
    client.force_login(alice)
    client.get(AUTHORIZE, authorize_params(alice_server))
    assert events(Action.SERVER_ACCESS) == []


def test_the_admin_shows_the_log_but_cannot_change_it(admin, client):
    Client().post("/hub/login", {"login": "nobody", "password": "x"})
    client.force_login(admin)
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILED)
    assert client.get("/hub/admin/accounts/auditevent/").status_code == 200
    assert client.get("/hub/admin/accounts/auditevent/add/").status_code == 403
    assert client.post(f"/hub/admin/accounts/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_admin_changes_through_the_api_are_recorded(admin, alice, api_client_for):
    api = api_client_for(admin)
    assert api.post("/hub/api/users", {"usernames": ["zed"]}, format="json").status_code == 201
    assert api.patch("/hub/api/users/alice", {"admin": True}, format="json").status_code == 200
    assert events(Action.ADMIN_ACTION) == [
        ("admin", "/hub/api/users/alice"),
        ("admin", "/hub/api/users"),
    ]


def test_users_acting_on_themselves_are_not_admin_actions(alice, api_client_for):
    api = api_client_for(alice)
    assert api.post("/hub/api/users/alice/tokens", {}, format="json").status_code == 201
    assert (
        api.post(
            "/hub/api/users/alice/activity",
            {"last_activity": "2024-01-01T00:00:00Z"},
            format="json",
        ).status_code
        == 200
    )
    assert api.get("/hub/api/users/alice").status_code == 200
    assert events(Action.ADMIN_ACTION) == []
