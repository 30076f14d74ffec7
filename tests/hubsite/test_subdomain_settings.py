"""HUB_SUBDOMAIN_HOST on the hub's side of the wiring: strict parsing, the
cookie check, and the hub refusing to serve pages on a user's host."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hubsite import checks, env

DOMAIN = "hub.example.org"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("hub.example.org", DOMAIN),
        (" Hub.Example.ORG. ", DOMAIN),
        ("localhost", "localhost"),
    ],
)
def test_subdomain_host_is_a_lowercased_dns_name(monkeypatch, raw, expected):
    monkeypatch.setenv("HUB_SUBDOMAIN_HOST", raw)
    assert env.env_dns_name("HUB_SUBDOMAIN_HOST") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "https://hub.example.org",
        "hub.example.org:8443",
        "hub.example.org/x",
        "a_b.example.org",
        "-hub.example.org",
        "hub..example.org",
        "*.example.org",
        "x" * 64 + ".org",
    ],
)
def test_subdomain_host_rejects_anything_but_a_dns_name(monkeypatch, raw):
    monkeypatch.setenv("HUB_SUBDOMAIN_HOST", raw)
    with pytest.raises(ImproperlyConfigured, match="HUB_SUBDOMAIN_HOST must be a DNS name"):
        env.env_dns_name("HUB_SUBDOMAIN_HOST")


def test_hub_cookies_have_no_domain_when_subdomains_are_on(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    assert settings.SESSION_COOKIE_DOMAIN is None
    assert settings.CSRF_COOKIE_DOMAIN is None
    assert checks.check_subdomain_cookies() == []


def test_a_cookie_domain_with_subdomains_is_a_check_error(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.SESSION_COOKIE_DOMAIN = "." + DOMAIN
    assert [e.id for e in checks.check_subdomain_cookies()] == ["hubsite.E001"]


def test_a_hub_off_the_subdomain_host_is_a_check_warning(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.HUB_PUBLIC_URL = "https://other.example.org"
    assert [w.id for w in checks.check_subdomain_hub_host()] == ["hubsite.W001"]
    settings.HUB_PUBLIC_URL = f"https://{DOMAIN}"
    assert checks.check_subdomain_hub_host() == []


@pytest.fixture
def subdomains(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.HUB_PUBLIC_URL = f"https://{DOMAIN}"
    return settings


@pytest.mark.django_db
def test_hub_page_on_a_user_host_is_redirected_to_the_hub_host(client, subdomains):
    response = client.get("/hub/login?next=/hub/home", HTTP_HOST="alice." + DOMAIN)
    assert response.status_code == 302
    assert response["Location"] == f"https://{DOMAIN}/hub/login?next=/hub/home"


@pytest.mark.django_db
def test_post_to_the_hub_on_a_user_host_is_refused(client, subdomains):
    response = client.post("/hub/login", {"login": "alice"}, HTTP_HOST="alice." + DOMAIN)
    assert response.status_code == 403
    assert "jupyterhub-hub-login" not in response.cookies


@pytest.mark.django_db
@pytest.mark.parametrize("host", [DOMAIN, "127.0.0.1:8081"])
def test_hub_host_and_internal_host_are_served(client, subdomains, host):
    assert client.get("/hub/login", HTTP_HOST=host).status_code == 200


@pytest.mark.django_db
def test_user_hosts_are_served_when_subdomains_are_off(client, settings):
    settings.HUB_SUBDOMAIN_HOST = ""
    assert client.get("/hub/login", HTTP_HOST="alice." + DOMAIN).status_code == 200
