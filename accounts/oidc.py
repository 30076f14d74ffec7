"""OpenID Connect's `nonce`, which allauth (65.x) does not send for its
openid_connect provider.

`state` and PKCE bind the authorization *code* to the browser that started
the sign-in; the nonce binds the *ID token*: an ID token minted for another
authorization request (another browser's, an attacker's own) carries another
nonce and is refused (OpenID Connect Core 3.1.2.1 and 3.1.3.7, step 11).

The nonce is kept in allauth's stashed state for the request, in the
server-side session next to the PKCE verifier: allauth pops that state at the
callback, so a nonce serves one callback only, and it expires with the state.
The provider class is swapped in with allauth's own `provider_class` setting
(hubsite/signin.py); the check runs first in the social adapter's
pre_social_login (accounts/adapters.py), the earliest point where both the
stashed state and the ID token's claims are at hand, and before any account
is created or anyone signed in. (allauth has looked the account up by then
and, for a known one, refreshed its stored provider data: claims the provider
itself issued for that account, never a login.)"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

NONCE_STATE_KEY = "oidc_nonce"
# 256 bits: the nonce must not be guessable (OpenID Connect Core 15.5.2)
NONCE_BYTES = 32


class NonceOpenIDConnectProvider(OpenIDConnectProvider):
    """allauth's provider, with a fresh nonce in every authorization request."""

    # allauth finds a provider's URL patterns and views by its package: still its own
    package = "allauth.socialaccount.providers.openid_connect"

    def redirect(
        self,
        request: HttpRequest,
        process: str,
        next_url: str | None = None,
        data: Any = None,
        **kwargs: Any,
    ) -> HttpResponse:
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        auth_params = kwargs.pop("auth_params", None)
        if auth_params is None:
            auth_params = self.get_auth_params()
        # last, so `?auth_params=nonce=...` on the login URL cannot choose it
        auth_params = {**auth_params, "nonce": nonce}
        # the remaining keyword arguments are stashed with the state
        kwargs[NONCE_STATE_KEY] = nonce
        return super().redirect(request, process, next_url, data, auth_params=auth_params, **kwargs)


def refuse_unbound_id_token(request: HttpRequest, sociallogin: Any) -> None:
    """Stop an OpenID Connect login unless its ID token carries the nonce of
    the authorization request this browser started (raises the refusal as
    ImmediateHttpResponse, allauth's page for a failed third-party login).
    A login without a stashed nonce or without an ID token is refused too:
    fail closed, rather than fall back to an unbound token. Other providers
    (GitHub: OAuth 2, no ID token) pass untouched."""
    provider = sociallogin.provider
    if not isinstance(provider, NonceOpenIDConnectProvider):
        return
    # popped: the nonce is used up whatever the outcome
    expected = sociallogin.state.pop(NONCE_STATE_KEY, None)
    id_token = sociallogin.account.extra_data.get("id_token") or {}
    received = id_token.get("nonce") if isinstance(id_token, dict) else None
    if (
        isinstance(expected, str)
        and expected
        and isinstance(received, str)
        and hmac.compare_digest(expected.encode(), received.encode())
    ):
        return
    raise ImmediateHttpResponse(
        render_authentication_error(
            request,
            provider,
            exception=PermissionDenied("the ID token's nonce is not this sign-in's"),
        )
    )
