"""Sign-in configuration from HUB_* variables: what cannot work stops the hub."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hubsite import signin

TEMPLATE = "uid={username},ou=people,dc=example,dc=org"


@pytest.fixture
def ldap_env(monkeypatch):
    def set_env(**variables: str) -> dict[str, object]:
        monkeypatch.setenv("HUB_LDAP_URI", "ldap://127.0.0.1:389")
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return signin.ldap_settings()

    return set_env


def test_no_ldap_uri_means_no_ldap_settings(monkeypatch):
    monkeypatch.delenv("HUB_LDAP_URI", raising=False)
    assert signin.ldap_settings() == {}


def test_the_dn_template_takes_ldapauthenticators_spelling(ldap_env):
    made = ldap_env(HUB_LDAP_USER_DN_TEMPLATE="uid={username},ou=100%,dc=example,dc=org")
    assert made["AUTH_LDAP_USER_DN_TEMPLATE"] == "uid=%(user)s,ou=100%%,dc=example,dc=org"
    assert made["AUTH_LDAP_BIND_AS_AUTHENTICATING_USER"] is True


def test_search_then_bind_builds_a_search_with_the_filter(ldap_env):
    made = ldap_env(
        HUB_LDAP_USER_SEARCH_BASE="ou=people,dc=example,dc=org",
        HUB_LDAP_USER_FILTER="(&(objectClass=person)(sAMAccountName={username}))",
    )
    search = made["AUTH_LDAP_USER_SEARCH"]
    assert search.base_dn == "ou=people,dc=example,dc=org"
    assert search.filterstr == "(&(objectClass=person)(sAMAccountName=%(user)s))"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "exactly one of HUB_LDAP_USER_DN_TEMPLATE"),
        (
            {"HUB_LDAP_USER_DN_TEMPLATE": TEMPLATE, "HUB_LDAP_USER_SEARCH_BASE": "dc=x"},
            "exactly one of",
        ),
        ({"HUB_LDAP_USER_DN_TEMPLATE": "uid=alice,dc=x"}, "must contain {username} once"),
        (
            {"HUB_LDAP_USER_DN_TEMPLATE": TEMPLATE, "HUB_LDAP_ALLOWED_GROUPS": "cn=g,dc=x"},
            "need HUB_LDAP_GROUP_SEARCH_BASE",
        ),
        (
            {
                "HUB_LDAP_USER_DN_TEMPLATE": TEMPLATE,
                "HUB_LDAP_GROUP_SEARCH_BASE": "dc=x",
                "HUB_LDAP_ALLOWED_GROUPS": " ; ",
            },
            "HUB_LDAP_ALLOWED_GROUPS is set but empty",
        ),
        ({"HUB_LDAP_USER_DN_TEMPLATE": TEMPLATE, "HUB_LDAP_CA_FILE": "/nonexistent"}, "no such"),
        (
            {"HUB_LDAP_USER_DN_TEMPLATE": TEMPLATE, "HUB_LDAP_START_TLS": "maybe"},
            "HUB_LDAP_START_TLS must be true or false",
        ),
    ],
)
def test_ldap_settings_that_cannot_work_stop_the_hub(ldap_env, variables, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("{", r"\{").replace("}", r"\}")):
        ldap_env(**variables)


def test_an_ldap_uri_of_another_scheme_stops_the_hub(ldap_env, monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="must start with ldap://"):
        monkeypatch.setenv("HUB_LDAP_URI", "http://dir")
        signin.ldap_settings()


def test_an_allow_list_set_but_empty_stops_the_hub(monkeypatch):
    monkeypatch.setenv("HUB_ALLOWED_USERS", " , ")
    with pytest.raises(ImproperlyConfigured, match="HUB_ALLOWED_USERS is set but empty"):
        signin.allow_list("HUB_ALLOWED_USERS")


def test_an_unset_allow_list_is_no_allow_list(monkeypatch):
    monkeypatch.delenv("HUB_ALLOWED_USERS", raising=False)
    assert signin.allow_list("HUB_ALLOWED_USERS") is None


@pytest.mark.parametrize(
    ("explicit", "external", "expected"),
    [(None, False, True), (None, True, False), ("true", True, True), ("false", False, False)],
)
def test_sign_up_is_closed_by_default_once_ldap_or_a_provider_signs_people_in(
    monkeypatch, explicit, external, expected
):
    if explicit is None:
        monkeypatch.delenv("HUB_SIGNUP_OPEN", raising=False)
    else:
        monkeypatch.setenv("HUB_SIGNUP_OPEN", explicit)
    assert signin.sign_up_open(external) is expected
