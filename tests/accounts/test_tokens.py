"""Token lifecycle outside the API: the create_token and ensure_admin commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, User

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_token_prints_only_a_working_token(alice):
    printed = run("create_token", "alice", "--note", "ci", "--expires-in", "60")
    raw = printed.strip()
    assert printed == raw + "\n"
    assert raw.startswith("hub_")
    token = ApiToken.objects.get(user=alice, note="ci")
    assert token.expires_at is not None
    assert token.hashed != raw and raw not in (token.salt, token.hashed)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    assert client.get("/hub/api/user").json()["name"] == "alice"


def test_create_token_with_scopes_limits_it(alice):
    raw = run("create_token", "alice", "--scopes", "read:users!user=alice").strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    # read:users does not include read:servers (JupyterHub 6.1.1; issue 8 finding 8)
    assert client.get("/hub/api/user").json()["scopes"] == [
        "read:users!user=alice",
        "read:users:activity!user=alice",
        "read:users:groups!user=alice",
        "read:users:name!user=alice",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("create_token", "nobody"),
        ("create_token", "alice", "--scopes", "admin:users"),
        ("create_token", "alice", "--scopes", "nonsense"),
        ("create_token", "alice", "--expires-in", "-5"),
    ],
)
def test_create_token_refuses_bad_requests(alice, args):
    with pytest.raises(CommandError):
        run(*args)


def test_ensure_admin_creates_once_and_prints_password_once(db):
    first = run("ensure_admin")
    assert first.startswith("admin login: username=admin password=")
    password = first.strip().rsplit("=", 1)[1]
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.is_staff and user.is_approved
    assert user.check_password(password)
    assert password not in user.password
    assert run("ensure_admin").strip() == "admin already exists: admin"


def test_ensure_admin_reset_sets_a_new_password(db):
    old = run("ensure_admin").strip().rsplit("=", 1)[1]
    new = run("ensure_admin", "--reset").strip().rsplit("=", 1)[1]
    user = User.objects.get(username="admin")
    assert new != old
    assert user.check_password(new) and not user.check_password(old)


def test_ensure_admin_with_custom_name(db):
    assert "username=root-admin" in run("ensure_admin", "--username", "root-admin")
    with pytest.raises(CommandError):
        run("ensure_admin", "--username", "Not Valid")
