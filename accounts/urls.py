"""Pages about who you are: log in and out, sign up, API tokens.

allauth's own URL set is mounted under /hub/accounts/ for its internal
redirects; the hub's public paths (/hub/login, /hub/signup, /hub/logout) come
after it so that `reverse()` (which picks the last pattern of a name) returns them."""

from __future__ import annotations

from allauth.account import views as allauth_views
from django.urls import include, path

from accounts import upstream, views

urlpatterns = [
    path("accounts/", include("allauth.account.urls")),
    path("accounts/", include("allauth.socialaccount.urls")),
    path("accounts/2fa/", include("allauth.mfa.urls")),
    # allauth's patterns carry their own oidc/ prefix: /hub/accounts/oidc/<provider_id>/login/
    path("accounts/", include("allauth.socialaccount.providers.openid_connect.urls")),
    path("accounts/github/login/", upstream.github_login, name="github_login"),
    path("accounts/github/login/callback/", upstream.github_callback, name="github_callback"),
    path("oauth_login", upstream.oauth_login, name="oauth-login"),
    path("oauth_callback", upstream.oauth_callback, name="oauth-callback"),
    path("", views.root, name="hub-root"),
    path("login", upstream.login, name="account_login"),
    path("signup", allauth_views.signup, name="account_signup"),
    path("logout", allauth_views.logout, name="account_logout"),
    path("token", views.TokenPage.as_view(), name="token"),
    path("token/<int:token_id>/revoke", views.revoke_token, name="token-revoke"),
]
