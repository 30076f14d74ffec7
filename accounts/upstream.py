"""/hub/oauth_login and /hub/oauth_callback, as with OAuthenticator: with one
upstream provider configured they start its flow and receive its answer, so a
client registration made for a JupyterHub (redirect URI
https://hub.example.org/hub/oauth_callback) keeps working. With several, each
has its own button and allauth's per-provider URLs."""

from __future__ import annotations

from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from allauth.utils import build_absolute_uri
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

CALLBACK_PATH = "/hub/oauth_callback"


class SingleProviderAdapter(OpenIDConnectOAuth2Adapter):
    """The configured provider, answering at /hub/oauth_callback."""

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


def _adapter(request: HttpRequest) -> SingleProviderAdapter:
    return SingleProviderAdapter(request, _provider_id())


def oauth_login(request: HttpRequest) -> HttpResponse:
    provider = get_adapter().get_provider(request, _provider_id())
    # this provider instance sends /hub/oauth_callback as its redirect URI
    provider.oauth2_adapter_class = SingleProviderAdapter
    return provider.redirect_from_request(request)


def oauth_callback(request: HttpRequest) -> HttpResponse:
    return OAuth2CallbackView.adapter_view(_adapter(request))(request)
