"""GitHub sign-in: allauth's GitHub adapter, with its URLs read at request
time (GitHub Enterprise, or the tests' stand-in, at HUB_GITHUB_URL), and the
person's organisations and teams fetched with their token, for
OAuthenticator's allowed_organizations (`org`, `org:team`). The only module
that calls GitHub's API."""

from __future__ import annotations

from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from django.conf import settings


def _web_url() -> str:
    return str(settings.HUB_SOCIAL_PROVIDERS["github"]["url"])


def _api_url() -> str:
    web = _web_url()
    return "https://api.github.com" if web == "https://github.com" else f"{web}/api/v3"


class HubGitHubAdapter(GitHubOAuth2Adapter):
    @property
    def access_token_url(self) -> str:
        return f"{_web_url()}/login/oauth/access_token"

    @property
    def authorize_url(self) -> str:
        return f"{_web_url()}/login/oauth/authorize"

    @property
    def profile_url(self) -> str:
        return f"{_api_url()}/user"

    @property
    def emails_url(self) -> str:
        return f"{_api_url()}/user/emails"

    def complete_login(self, request, app, token, **kwargs):
        login = super().complete_login(request, app, token, **kwargs)
        login.account.extra_data["hub_groups"] = memberships(token.token)
        return login


def memberships(access_token: str) -> list[str]:
    """`org` for each organisation and `org:team` for each team of the person."""
    headers = {"Authorization": f"token {access_token}", "Accept": "application/vnd.github+json"}
    with get_adapter().get_requests_session() as session:
        orgs = session.get(f"{_api_url()}/user/orgs", headers=headers, timeout=30)
        orgs.raise_for_status()
        teams = session.get(f"{_api_url()}/user/teams", headers=headers, timeout=30)
        teams.raise_for_status()
    names = [org["login"] for org in orgs.json()]
    names += [f"{team['organization']['login']}:{team['slug']}" for team in teams.json()]
    return names
