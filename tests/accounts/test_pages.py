"""The account pages: login, sign-up with approval, logout, the token page,
and the account side of the Django admin."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services
from accounts.identity import session_id_for
from accounts.models import ApiToken, User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def sign_up(client: Client, username: str = "dave") -> object:
    data = {"username": username, "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/hub/signup", data)


# --- root, login, logout --------------------------------------------------------


def test_root_sends_anonymous_visitors_to_login(client):
    response = client.get("/hub/")
    assert response.status_code == 302
    assert response["Location"] == "/hub/login"


def test_root_sends_logged_in_users_home(client, alice):
    client.force_login(alice)
    assert client.get("/hub/")["Location"] == "/hub/home"


def test_login_page_renders_form_with_csrf_token(client):
    response = client.get("/hub/login")
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert b'name="login"' in response.content and b'href="/hub/signup' in response.content


def test_login_with_right_password_goes_home(client, alice):
    response = client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/hub/home"
    assert logged_in(client)


def test_login_with_wrong_password_shows_error(client, alice):
    response = client.post("/hub/login", {"login": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"not correct" in response.content
    assert not logged_in(client)


@pytest.mark.parametrize(
    "next_url",
    ["//evil.example/", "///evil.example", "https://evil.example/", "/\\evil.example", "ftp://x"],
)
def test_login_never_redirects_off_site(client, alice, next_url):
    response = client.post("/hub/login", {"login": "alice", "password": PASSWORD, "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == "/hub/home"


def test_login_follows_a_local_next(client, alice):
    response = client.post(
        "/hub/login", {"login": "alice", "password": PASSWORD, "next": "/hub/token"}
    )
    assert response["Location"] == "/hub/token"


def test_next_parameter_is_html_escaped_on_login_page(client):
    response = client.get('/hub/login?next=/hub/"><script>alert(1)</script>')
    assert b"<script>alert(1)" not in response.content


def test_forged_session_cookie_just_sees_the_login_page(client, alice):
    client.cookies["jupyterhub-hub-login"] = "forged" * 6
    response = client.get("/hub/home")
    assert response.status_code == 302
    assert response["Location"].startswith("/hub/login?next=")


def test_session_cookie_is_scoped_to_hub_and_httponly(client, alice):
    response = client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    cookie = response.cookies["jupyterhub-hub-login"]
    assert cookie["path"] == "/hub/"
    assert cookie["httponly"]


def test_logout_get_asks_for_confirmation(client, alice):
    client.force_login(alice)
    response = client.get("/hub/logout")
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content
    assert logged_in(client)


def test_logout_post_logs_out(client, alice):
    client.force_login(alice)
    response = client.post("/hub/logout")
    assert response.status_code == 302
    assert response["Location"] == "/hub/login"
    assert not logged_in(client)


def test_logout_revokes_oauth_tokens_of_this_session(client, alice):
    client.force_login(alice)
    session = client.session
    session_id = session_id_for(session)
    session.save()
    services.issue_token(alice, kind=ApiToken.Kind.OAUTH, session_id=session_id)
    services.issue_token(alice, kind=ApiToken.Kind.OAUTH, session_id="another-session")
    client.post("/hub/logout")
    remaining = ApiToken.objects.filter(user=alice, kind=ApiToken.Kind.OAUTH)
    assert list(remaining.values_list("session_id", flat=True)) == ["another-session"]


def test_logout_without_csrf_token_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/hub/logout")
    assert response.status_code == 403
    assert b"Form expired or forged" in response.content
    assert logged_in(client)


# --- sign-up and approval -------------------------------------------------------


def test_signup_creates_an_unapproved_user_who_is_not_logged_in(client):
    response = sign_up(client)
    assert response.status_code == 200
    assert b"waiting for approval" in response.content
    assert User.objects.get(username="dave").is_approved is False
    assert not logged_in(client)


def test_unapproved_user_cannot_log_in(client):
    sign_up(client)
    response = client.post("/hub/login", {"login": "dave", "password": PASSWORD})
    assert response.status_code == 403
    assert b"waiting for approval" in response.content
    assert not logged_in(client)


def test_approval_in_admin_lets_the_user_log_in(client, admin):
    sign_up(client)
    dave = User.objects.get(username="dave")
    staff = Client()
    staff.force_login(admin)
    response = staff.post(
        "/hub/admin/accounts/user/", {"action": "approve", "_selected_action": [dave.pk]}
    )
    assert response.status_code == 302
    response = client.post("/hub/login", {"login": "dave", "password": PASSWORD})
    assert response["Location"] == "/hub/home"
    assert logged_in(client)


def test_signup_logs_in_directly_when_approval_is_off(client, settings):
    settings.HUB_SIGNUP_REQUIRES_APPROVAL = False
    response = sign_up(client)
    assert response.status_code == 302
    assert logged_in(client)


def test_signup_lowercases_and_validates_username(client):
    sign_up(client, "Dave")
    assert User.objects.filter(username="dave").exists()
    response = sign_up(client, "bad/name")
    assert response.status_code == 200
    assert b"lowercase letters" in response.content
    assert not User.objects.filter(username="bad/name").exists()


def test_signup_with_taken_name_in_other_case_is_refused(client, alice):
    response = sign_up(client, "ALICE")
    assert b"already exists" in response.content
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_signup_page_says_closed_when_signup_is_off(client, settings):
    settings.HUB_SIGNUP_OPEN = False
    assert b"Sign-up is closed" in client.get("/hub/signup").content
    sign_up(client)
    assert not User.objects.filter(username="dave").exists()


def test_a_session_whose_user_was_unapproved_is_ended(client, alice):
    client.force_login(alice)
    User.objects.filter(pk=alice.pk).update(is_approved=False)
    response = client.get("/hub/home")
    assert response["Location"].startswith("/hub/login")
    assert not logged_in(client)


# --- token page -----------------------------------------------------------------


def test_token_page_requires_login(client):
    assert client.get("/hub/token")["Location"] == "/hub/login?next=/hub/token"


def test_token_page_creates_a_token_shown_once(client, alice):
    client.force_login(alice)
    response = client.post(
        "/hub/token",
        {
            "note": "laptop",
            "expires_in": "3600",
            "scopes": "read:users!user=alice, servers!user=alice",
        },
    )
    assert response.status_code == 200
    raw = response.context["new_token"]
    assert raw.encode() in response.content
    token = ApiToken.objects.get(user=alice, note="laptop")
    assert token.scopes == ["read:users!user=alice", "servers!user=alice"]
    assert token.expires_at is not None and token.matches(raw)
    page = client.get("/hub/token")
    assert raw.encode() not in page.content and b"laptop" in page.content


def test_token_page_defaults_to_inherit_and_no_expiry(client, alice):
    client.force_login(alice)
    client.post("/hub/token", {"note": "", "expires_in": "", "scopes": ""})
    token = ApiToken.objects.get(user=alice)
    assert token.scopes == ["inherit"] and token.expires_at is None


@pytest.mark.parametrize(
    ("scopes", "message"),
    [("no-such-scope", b"no-such-scope"), ("admin:users", b"not allowed to request")],
)
def test_token_page_refuses_bad_or_excess_scopes(client, alice, scopes, message):
    client.force_login(alice)
    response = client.post("/hub/token", {"scopes": scopes, "expires_in": ""})
    assert response.status_code == 400
    assert message in response.content
    assert not ApiToken.objects.filter(user=alice).exists()


def test_token_page_refuses_unknown_expiry(client, alice):
    client.force_login(alice)
    response = client.post("/hub/token", {"expires_in": "-5"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_revoking_own_token_deletes_it(client, alice):
    token, _ = services.issue_token(alice, note="old")
    client.force_login(alice)
    response = client.post(f"/hub/token/{token.pk}/revoke")
    assert response["Location"] == "/hub/token"
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_another_users_token_cannot_be_revoked(client, alice, bob):
    token, _ = services.issue_token(bob, note="bob's")
    client.force_login(alice)
    assert client.post(f"/hub/token/{token.pk}/revoke").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_token_list_shows_only_own_personal_tokens(client, alice, bob):
    services.issue_token(alice, note="mine")
    services.issue_token(bob, note="bobs-token")
    services.issue_token(alice, note="server-own", kind=ApiToken.Kind.SERVER, check_owner=False)
    client.force_login(alice)
    content = client.get("/hub/token").content
    assert b"mine" in content
    assert b"bobs-token" not in content and b"server-own" not in content


# --- Django admin (accounts) ----------------------------------------------------


@pytest.fixture
def staff(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_admin_is_refused_to_normal_users(client, alice):
    client.force_login(alice)
    response = client.get("/hub/admin/")
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_admin_user_list_filters_by_approval(staff, alice):
    User.objects.create_user("erin", password=PASSWORD, is_approved=False)
    response = staff.get("/hub/admin/accounts/user/?is_approved__exact=0")
    assert response.status_code == 200
    assert b"erin" in response.content and b">alice<" not in response.content


def test_admin_make_admin_action_sets_superuser_and_staff(staff, alice):
    staff.post(
        "/hub/admin/accounts/user/", {"action": "make_admin", "_selected_action": [alice.pk]}
    )
    alice.refresh_from_db()
    assert alice.is_superuser and alice.is_staff


def test_admin_user_page_edits_group_membership(staff, alice, team):
    response = staff.get(f"/hub/admin/accounts/user/{alice.pk}/change/")
    assert response.status_code == 200
    assert b"team" in response.content


def test_admin_token_pages_never_show_hashes(staff, alice):
    token, raw = services.issue_token(alice, note="visible-note")
    listing = staff.get("/hub/admin/accounts/apitoken/")
    detail = staff.get(f"/hub/admin/accounts/apitoken/{token.pk}/change/")
    for response in (listing, detail):
        assert response.status_code == 200
        assert token.hashed.encode() not in response.content
        assert token.salt.encode() not in response.content
        assert raw.encode() not in response.content
    assert b"visible-note" in listing.content


def test_admin_revoke_action_deletes_tokens(staff, alice):
    token, _ = services.issue_token(alice)
    staff.post(
        "/hub/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_admin_group_pages_render(staff, team):
    assert staff.get("/hub/admin/accounts/group/").status_code == 200
    assert staff.get(f"/hub/admin/accounts/group/{team.pk}/change/").status_code == 200


# --- error pages ----------------------------------------------------------------


def test_unknown_page_gets_the_friendly_404(client):
    response = client.get("/hub/no-such-page")
    assert response.status_code == 404
    assert b"Page not found" in response.content


def test_pages_forbid_framing_and_inline_scripts(client):
    policy = client.get("/hub/login")["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1]


def test_admin_login_uses_the_hub_login_page(client):
    response = client.get("/hub/admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/hub/login?next=%2Fhub%2Fadmin%2F"
    assert b'name="login"' in response.content
