"""OpenID Connect sign-in against a real provider (tests/services/oidc_provider.py):
/hub/oauth_login -> the provider -> /hub/oauth_callback, claims to hub groups
and admin, refused people, a tampered state, an ID token not bound to the
sign-in by its nonce."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from allauth.socialaccount.providers import registry
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from accounts import auth_state
from accounts.models import User
from accounts.oidc import NONCE_STATE_KEY, NonceOpenIDConnectProvider
from hubsite import signin
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
    tamper: Callable[[str], str] | None = None,
    at_provider: Callable[[str], str] | None = None,
    before_callback: Callable[[Client], None] | None = None,
    start_url: str = "/hub/oauth_login",
    callback_path: str = "/hub/oauth_callback",
):
    """The whole redirect dance, the browser's part at the provider done by
    requests. `at_provider` rewrites the authorization URL the provider sees,
    `before_callback` changes the hub session, `tamper` rewrites the callback query."""
    start = client.get(start_url)
    assert start.status_code == 302, start.content
    authorize = at_provider(start["Location"]) if at_provider else start["Location"]
    back = sign_in_at_provider(authorize, account)
    parts = urlsplit(back)
    assert parts.path == callback_path
    if before_callback:
        before_callback(client)
    query = tamper(parts.query) if tamper else parts.query
    return client.get(f"{parts.path}?{query}")


def auth_params(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def with_params(url: str, **changes: str | None) -> str:
    """URL with its query parameters changed (None: removed)."""
    params = {**auth_params(url), **changes}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return urlunsplit(urlsplit(url)._replace(query=query))


def stashed_states(client: Client) -> dict[str, list]:
    """allauth's pending sign-ins in the hub session: state id -> [state, time, provider]."""
    return client.session.get("socialaccount_states", {})


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
    assert b"Sign-in failed" in response.content
    assert not User.objects.filter(username="bob").exists()


def test_the_authorization_request_carries_a_fresh_nonce_kept_with_its_state(oidc_groups):
    client = Client()
    first = auth_params(client.get("/hub/oauth_login")["Location"])
    second = auth_params(client.get("/hub/oauth_login")["Location"])
    assert len(first["nonce"]) >= 43 and first["nonce"] != second["nonce"]
    for sent in (first, second):
        state, _, _ = stashed_states(client)[sent["state"]]
        assert state[NONCE_STATE_KEY] == sent["nonce"]


def test_a_nonce_on_the_login_url_does_not_replace_the_hubs_own(oidc_groups):
    chosen = urlencode({"auth_params": "nonce=chosen-by-someone-else"})
    sent = auth_params(Client().get(f"/hub/oauth_login?{chosen}")["Location"])
    assert sent["nonce"] != "chosen-by-someone-else"


def test_an_id_token_issued_for_another_nonce_is_refused_and_nobody_signs_in(oidc_groups):
    client = Client()
    response = oauth_login(
        client, "bob", at_provider=lambda url: with_params(url, nonce="another-sign-ins-nonce")
    )
    assert response.status_code == 401
    assert b"Sign-in failed" in response.content and b"nobody was signed in" in response.content
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="bob").exists()


def test_an_id_token_without_a_nonce_is_refused(oidc_groups):
    client = Client()
    response = oauth_login(client, "bob", at_provider=lambda url: with_params(url, nonce=None))
    assert response.status_code == 401
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="bob").exists()


def test_a_stored_nonce_changed_between_redirect_and_callback_is_refused(oidc_groups):
    def change_stored_nonce(client: Client) -> None:
        session = client.session
        for state, _, _ in session["socialaccount_states"].values():
            state[NONCE_STATE_KEY] = "not-the-nonce-the-provider-saw"
        session.save()

    client = Client()
    response = oauth_login(client, "bob", before_callback=change_stored_nonce)
    assert response.status_code == 401
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="bob").exists()


def test_an_existing_user_is_not_signed_in_by_an_unbound_id_token(oidc_groups, bob):
    client = Client()
    response = oauth_login(
        client, "bob", at_provider=lambda url: with_params(url, nonce="replayed")
    )
    assert response.status_code == 401
    assert logged_in_as(client) is None


def test_an_id_token_from_another_login_is_refused_even_without_pkce(oidc_groups, settings):
    """Without PKCE the code of one sign-in can be redeemed under another's
    state; the ID token it yields still carries the first sign-in's nonce."""
    settings.SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"][0]["settings"][
        "oauth_pkce_enabled"
    ] = False
    client = Client()
    first = client.get("/hub/oauth_login")["Location"]
    first_back = urlsplit(sign_in_at_provider(first, "bob"))
    second = auth_params(client.get("/hub/oauth_login")["Location"])
    assert "code_challenge" not in second
    response = client.get(
        with_params(f"{first_back.path}?{first_back.query}", state=second["state"])
    )
    assert response.status_code == 401
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="bob").exists()


def test_a_nonce_serves_one_callback_only(oidc_groups):
    client = Client()
    start = client.get("/hub/oauth_login")
    sent = auth_params(start["Location"])
    back = urlsplit(sign_in_at_provider(start["Location"], "bob"))
    assert client.get(f"{back.path}?{back.query}").status_code == 302
    assert logged_in_as(client) == "bob"
    assert sent["state"] not in stashed_states(client)
    kept = [s for s, _, _ in stashed_states(client).values() if NONCE_STATE_KEY in s]
    assert kept == []


def test_the_per_provider_login_url_sends_a_nonce_and_signs_in(oidc_groups):
    client = Client()
    sent = {}

    def note(url: str) -> str:
        sent.update(auth_params(url))
        return url

    response = oauth_login(
        client,
        "bob",
        at_provider=note,
        start_url="/hub/accounts/oidc/oidc/login/",  # the README's per-provider URLs
        callback_path="/hub/accounts/oidc/oidc/login/callback/",
    )
    assert sent["nonce"] and response.status_code == 302
    assert logged_in_as(client) == "bob"


def test_scopes_without_openid_stop_the_hub_at_start(use_oidc):
    with pytest.raises(ImproperlyConfigured, match="HUB_OIDC_SCOPES must include openid"):
        use_oidc(HUB_OIDC_SCOPES="profile email")


def test_openid_connect_uses_the_nonce_sending_provider_even_when_none_is_configured():
    """allauth's provider registry reads the class once, at its first use."""
    assert signin.socialaccount_settings({})["openid_connect"] == {
        "provider_class": "accounts.oidc.NonceOpenIDConnectProvider"
    }
    registry.load()
    assert registry.get_class("openid_connect") is NonceOpenIDConnectProvider


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
