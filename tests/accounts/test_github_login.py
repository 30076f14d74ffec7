"""GitHub sign-in with allowed organisations and teams, against a labelled
STAND-IN of GitHub's endpoints (tests/services/github_standin.py): github.com
cannot be reached here. The hub's side is the real one: allauth's GitHub
adapter at HUB_GITHUB_URL, organisations and teams read with the person's token."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client

from accounts.models import User
from hubsite import signin
from tests.accounts.test_oidc_login import logged_in_as
from tests.services.github_standin import start_github

pytestmark = pytest.mark.django_db


@pytest.fixture
def github(monkeypatch, settings, fresh_limits):
    standin = start_github()

    def configure(**variables: str) -> None:
        for name in list(os.environ):
            if name.startswith(("HUB_OIDC_", "HUB_GOOGLE_", "HUB_GITHUB_")):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HUB_GITHUB_CLIENT_ID", "gh-client")
        monkeypatch.setenv("HUB_GITHUB_CLIENT_SECRET", "gh-secret")
        monkeypatch.setenv("HUB_GITHUB_URL", standin.url)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        settings.HUB_SOCIAL_PROVIDERS = signin.social_providers()
        settings.SOCIALACCOUNT_PROVIDERS = signin.socialaccount_settings(
            settings.HUB_SOCIAL_PROVIDERS
        )

    standin.configure = configure
    configure(
        HUB_GITHUB_ALLOWED_ORGANIZATIONS="jupyter-org:students,jupyter-org:admins",
        HUB_GITHUB_ADMIN_ORGANIZATIONS="jupyter-org:admins",
    )
    yield standin
    standin.stop()


def github_login(client: Client, standin, login: str):
    standin.sign_in_as(login)
    start = client.get("/hub/oauth_login")
    assert start.status_code == 302, start.content
    back = requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"]
    parts = urlsplit(back)
    assert parts.path == "/hub/oauth_callback"
    return client.get(f"{parts.path}?{parts.query}")


def test_a_team_member_signs_in_with_teams_as_groups(github):
    client = Client()
    github_login(client, github, "hubot")
    assert logged_in_as(client) == "hubot"
    hubot = User.objects.get(username="hubot")
    assert hubot.sign_in == "github" and not hubot.is_superuser
    assert sorted(g.name for g in hubot.hub_groups.all()) == ["jupyter-org", "jupyter-org-students"]


def test_the_admin_team_makes_an_admin(github):
    github_login(Client(), github, "octocat")
    assert User.objects.get(username="octocat").is_superuser


def test_someone_outside_the_allowed_organisations_is_refused(github):
    client = Client()
    assert github_login(client, github, "stranger").status_code == 403
    assert not User.objects.filter(username="stranger").exists()


def test_a_whole_organisation_can_be_allowed(github):
    github.configure(HUB_GITHUB_ALLOWED_ORGANIZATIONS="other-org")
    client = Client()
    github_login(client, github, "stranger")
    assert logged_in_as(client) == "stranger"
