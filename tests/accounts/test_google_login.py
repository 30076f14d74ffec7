"""Google sign-in with allowed hosted domains.

Google's public endpoints cannot be reached here, so a STAND-IN plays Google:
the local OpenID Connect provider of tests/services/oidc_provider.py (Google is
an OpenID Connect provider; the hub talks to it the same way, with
HUB_GOOGLE_ISSUER pointed at the stand-in instead of accounts.google.com), with
accounts that carry Google's `hd` (hosted domain) claim."""

from __future__ import annotations

import os

import pytest
from django.test import Client

from accounts.models import User
from hubsite import signin
from tests.accounts.test_oidc_login import logged_in_as, oauth_login
from tests.services.oidc_provider import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def use_google(oidc_provider, monkeypatch, settings, fresh_limits):
    for name in list(os.environ):
        if name.startswith(("HUB_OIDC_", "HUB_GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_GOOGLE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("HUB_GOOGLE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("HUB_GOOGLE_ISSUER", oidc_provider.issuer)  # the stand-in
    monkeypatch.setenv("HUB_GOOGLE_HOSTED_DOMAINS", "example.edu")
    settings.HUB_SOCIAL_PROVIDERS = signin.social_providers()
    settings.SOCIALACCOUNT_PROVIDERS = signin.socialaccount_settings(settings.HUB_SOCIAL_PROVIDERS)


def test_google_is_asked_for_the_hosted_domain(use_google):
    assert "hd=example.edu" in Client().get("/hub/oauth_login")["Location"]


def test_google_is_sent_a_nonce(use_google):
    assert "nonce=" in Client().get("/hub/oauth_login")["Location"]


def test_an_account_of_the_allowed_domain_signs_in_by_its_address(use_google):
    client = Client()
    oauth_login(client, "dora@example.edu")
    assert logged_in_as(client) == "dora"
    assert User.objects.get(username="dora").sign_in == "google"


def test_an_account_outside_the_hosted_domains_is_refused(use_google):
    client = Client()
    assert oauth_login(client, "eve@gmail.com").status_code == 403
    assert not User.objects.filter(username="eve").exists()


def test_google_defaults_to_the_real_issuer(monkeypatch):
    monkeypatch.setenv("HUB_GOOGLE_CLIENT_ID", "x")
    monkeypatch.setenv("HUB_GOOGLE_CLIENT_SECRET", "y")
    monkeypatch.delenv("HUB_GOOGLE_ISSUER", raising=False)
    monkeypatch.delenv("HUB_OIDC_ISSUER", raising=False)
    app = signin.social_providers()["google"]["app"]
    assert app["settings"]["server_url"] == "https://accounts.google.com"
