"""OpenID Connect sign-in against a real provider (tests/services/oidc_provider.py):
/hub/oauth_login -> the provider -> /hub/oauth_callback, claims to hub groups
and admin, refused people, a tampered state."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client

from accounts import auth_state
from accounts.models import User
from servers.services import build_spec
from tests.factories import ServerFactory
from tests.services.oidc_provider import sign_in_at_provider

pytestmark = pytest.mark.django_db

GROUP_RULES = {
    "HUB_OIDC_SCOPES": "openid profile email groups offline_access",
    "HUB_OIDC_GROUPS_CLAIM": "groups",
    "HUB_OIDC_ALLOWED_GROUPS": "researchers",
    "HUB_OIDC_ADMIN_GROUPS": "hub-admins",
}


def oauth_login(
    client: Client,
    account: str,
    *,
    tamper=None,
    start_url: str = "/hub/oauth_login",
    callback_path: str = "/hub/oauth_callback",
):
    """The whole redirect dance, the browser's part at the provider done by requests."""
    start = client.get(start_url)
    assert start.status_code == 302, start.content
    back = sign_in_at_provider(start["Location"], account)
    parts = urlsplit(back)
    assert parts.path == callback_path
    query = tamper(parts.query) if tamper else parts.query
    return client.get(f"{parts.path}?{query}")


def logged_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


@pytest.fixture
def oidc_groups(use_oidc, fresh_limits):
    use_oidc(**GROUP_RULES)


def test_oauth_login_redirects_to_the_provider_with_oauth_callback(oidc_groups, oidc_provider):
    start = Client().get("/hub/oauth_login")
    assert start["Location"].startswith(oidc_provider.issuer + "/auth?")
    assert "redirect_uri=http%3A%2F%2Ftestserver%2Fhub%2Foauth_callback" in start["Location"]


def test_a_member_of_an_allowed_group_signs_in_with_groups_and_name(oidc_groups):
    client = Client()
    response = oauth_login(client, "bob")
    assert response.status_code == 302 and response["Location"] == "/hub/home"
    bob = User.objects.get(username="bob")
    assert logged_in_as(client) == "bob"
    assert (bob.sign_in, bob.display_name, bob.is_superuser) == ("oidc", "Bob Builder", False)
    assert [g.name for g in bob.hub_groups.all()] == ["researchers"]


def test_the_admin_group_makes_an_admin(oidc_groups):
    oauth_login(Client(), "alice")
    alice = User.objects.get(username="alice")
    assert alice.is_superuser and alice.is_staff
    assert sorted(g.name for g in alice.hub_groups.all()) == ["hub-admins", "researchers"]


def test_leaving_the_admin_group_unmakes_the_admin(use_oidc, fresh_limits):
    use_oidc(**{**GROUP_RULES, "HUB_OIDC_ADMIN_GROUPS": "researchers"})
    oauth_login(Client(), "bob")
    assert User.objects.get(username="bob").is_superuser
    use_oidc(**GROUP_RULES)
    oauth_login(Client(), "bob")
    assert not User.objects.get(username="bob").is_superuser


def test_someone_outside_the_allowed_groups_is_refused(oidc_groups):
    client = Client()
    response = oauth_login(client, "carol")
    assert response.status_code == 403 and b"not allowed" in response.content
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="carol").exists()


def test_without_any_allow_rule_nobody_gets_in(use_oidc, fresh_limits):
    use_oidc()  # fails closed, like OAuthenticator without allow_all
    assert oauth_login(Client(), "bob").status_code == 403


def test_a_tampered_state_is_refused(oidc_groups):
    client = Client()
    response = oauth_login(client, "bob", tamper=lambda q: q.replace("state=", "state=x"))
    assert logged_in_as(client) is None
    assert response.status_code in (400, 401, 403)
    assert not User.objects.filter(username="bob").exists()


def test_the_per_provider_login_url_signs_in(oidc_groups):
    client = Client()
    response = oauth_login(
        client,
        "bob",
        start_url="/hub/accounts/oidc/oidc/login/",  # the README's per-provider URLs
        callback_path="/hub/accounts/oidc/oidc/login/callback/",
    )
    assert response.status_code == 302
    assert logged_in_as(client) == "bob"


def test_a_code_replayed_in_another_browser_is_refused(oidc_groups):
    victim = Client()
    start = victim.get("/hub/oauth_login")
    back = urlsplit(sign_in_at_provider(start["Location"], "bob"))
    attacker = Client()
    attacker.get("/hub/oauth_login")  # a state of its own, not the victim's
    attacker.get(f"{back.path}?{back.query}")
    assert logged_in_as(attacker) is None


def test_an_existing_hub_user_of_the_same_name_is_the_same_person(oidc_groups, bob):
    client = Client()
    oauth_login(client, "bob")
    assert logged_in_as(client) == "bob"
    assert User.objects.filter(username__startswith="bob").count() == 1


def test_an_unverified_email_from_the_provider_never_takes_over_an_account(oidc_groups, alice):
    alice.email = "alice@example.org"
    alice.save()
    client = Client()
    oauth_login(client, "mallory")
    assert logged_in_as(client) == "mallory"
    mallory = User.objects.get(username="mallory")
    assert mallory.pk != alice.pk and mallory.email == ""


def test_auth_state_keeps_the_upstream_tokens_encrypted(oidc_groups, settings):
    from cryptography.fernet import Fernet

    settings.HUB_AUTH_STATE = True
    settings.HUB_CRYPT_KEY = Fernet.generate_key().decode()
    oauth_login(Client(), "bob")
    bob = User.objects.get(username="bob")
    state = auth_state.decrypt(bob.encrypted_auth_state)
    assert state["access_token"] and state["access_token"] not in bob.encrypted_auth_state
    assert state["oauth_user"]["groups"] == ["researchers"]
    spec = build_spec(ServerFactory(user=bob), api_token="t")
    assert spec.environment["UPSTREAM_ACCESS_TOKEN"] == state["access_token"]


def test_provider_sign_in_works_with_local_sign_up_closed(oidc_groups, settings):
    settings.HUB_SIGNUP_OPEN = False
    client = Client()
    oauth_login(client, "bob")
    assert logged_in_as(client) == "bob"


def test_the_login_page_shows_a_button_for_the_provider_and_the_form(use_oidc, fresh_limits):
    use_oidc(HUB_OIDC_DISPLAY_NAME="University SSO", **GROUP_RULES)
    page = Client().get("/hub/login?next=/hub/token").content.decode()
    assert 'href="/hub/oauth_login?next=%2Fhub%2Ftoken">Sign in with University SSO' in page
    assert 'id="login-form"' in page


def test_the_login_page_without_providers_has_no_buttons(fresh_limits):
    page = Client().get("/hub/login").content.decode()
    assert "sign-in-providers" not in page and 'id="login-form"' in page


def test_auto_login_sends_people_straight_to_the_provider(oidc_groups, settings):
    settings.HUB_AUTO_LOGIN = True
    response = Client().get("/hub/login?next=/hub/token")
    assert response.status_code == 302
    assert response["Location"] == "/hub/oauth_login?next=%2Fhub%2Ftoken"
    # the hub's own admin can still reach the password form
    assert Client().get("/hub/login?form=1").status_code == 200


def test_the_next_page_survives_the_provider_round_trip(oidc_groups):
    client = Client()
    start = client.get("/hub/oauth_login?next=/hub/token")
    back = urlsplit(sign_in_at_provider(start["Location"], "bob"))
    assert client.get(f"{back.path}?{back.query}")["Location"] == "/hub/token"


def test_the_admin_shows_how_each_user_signed_in(oidc_groups, admin):
    oauth_login(Client(), "bob")
    staff = Client()
    staff.force_login(admin)
    page = staff.get("/hub/admin/accounts/user/").content.decode()
    assert "OpenID Connect" in page and "researchers" in page
