"""/hub/oauth_login and /hub/oauth_callback, as with OAuthenticator: with one
upstream provider configured they start its flow and receive its answer, so a
client registration made for a JupyterHub (redirect URI
https://hub.example.org/hub/oauth_callback) keeps working. With several, each
has its own button and allauth's per-provider URLs."""

from __future__ import annotations

from urllib.parse import urlencode

from allauth.account import views as allauth_views
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from allauth.utils import build_absolute_uri
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts.github import HubGitHubAdapter

CALLBACK_PATH = "/hub/oauth_callback"


class SingleProviderAdapter(OpenIDConnectOAuth2Adapter):
    """The configured provider, answering at /hub/oauth_callback."""

    def get_callback_url(self, request: HttpRequest, app) -> str:
        return build_absolute_uri(request, CALLBACK_PATH, self.redirect_uri_protocol)


class SingleGitHubAdapter(HubGitHubAdapter):
    def get_callback_url(self, request: HttpRequest, app) -> str:
        return build_absolute_uri(request, CALLBACK_PATH, self.redirect_uri_protocol)


def single_provider_id() -> str | None:
    providers = settings.HUB_SOCIAL_PROVIDERS
    return next(iter(providers)) if len(providers) == 1 else None


def _provider_id() -> str:
    provider_id = single_provider_id()
    if provider_id is None:
        raise Http404("/hub/oauth_login needs exactly one configured provider")
    return provider_id


def _adapter(request: HttpRequest):
    provider_id = _provider_id()
    if provider_id == "github":
        return SingleGitHubAdapter(request)
    return SingleProviderAdapter(request, provider_id)


def oauth_login(request: HttpRequest) -> HttpResponse:
    provider_id = _provider_id()
    provider = get_adapter().get_provider(request, provider_id)
    # this provider instance sends /hub/oauth_callback as its redirect URI
    if provider_id == "github":
        provider.oauth2_adapter_class = SingleGitHubAdapter
    else:
        provider.oauth2_adapter_class = SingleProviderAdapter
    return provider.redirect_from_request(request)


def github_login(request: HttpRequest) -> HttpResponse:
    """GitHub among several providers: its own login and callback URLs."""
    provider = get_adapter().get_provider(request, "github")
    provider.oauth2_adapter_class = HubGitHubAdapter
    return provider.redirect_from_request(request)


def github_callback(request: HttpRequest) -> HttpResponse:
    return OAuth2CallbackView.adapter_view(HubGitHubAdapter(request))(request)


def oauth_callback(request: HttpRequest) -> HttpResponse:
    return OAuth2CallbackView.adapter_view(_adapter(request))(request)


def provider_buttons(next_url: str = "") -> list[dict[str, str]]:
    """One sign-in button per configured provider, for the login page."""
    providers = settings.HUB_SOCIAL_PROVIDERS
    query = f"?{urlencode({'next': next_url})}" if next_url else ""
    if len(providers) == 1:
        (provider,) = providers.values()
        return [{"name": str(provider["app"]["name"]), "url": "/hub/oauth_login" + query}]
    return [
        {
            "name": str(provider["app"]["name"]),
            "url": (
                reverse("github_login")
                if provider_id == "github"
                else reverse("openid_connect_login", kwargs={"provider_id": provider_id})
            )
            + query,
        }
        for provider_id, provider in providers.items()
    ]


class LoginView(allauth_views.LoginView):
    """/hub/login: a button per configured provider above the password form
    (local accounts, LDAP). With HUB_AUTO_LOGIN and one provider, straight to
    it (OAuthenticator's auto_login); `?form=1` still shows the form, for the
    hub's own admin account."""

    def get(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if settings.HUB_AUTO_LOGIN and single_provider_id() and "form" not in request.GET:
            next_url = request.GET.get("next", "")
            query = f"?{urlencode({'next': next_url})}" if next_url else ""
            return redirect("/hub/oauth_login" + query)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: object) -> dict:
        context = super().get_context_data(**kwargs)
        context["sign_in_providers"] = provider_buttons(self.request.GET.get("next", ""))
        return context


login = LoginView.as_view()
