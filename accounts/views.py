"""Account pages: the hub root and the API token page. Thin: parse, call
accounts.services, render. Login, sign-up and logout are allauth's views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.decorators.http import require_POST

from accounts import services
from accounts.forms import TokenForm
from accounts.models import ApiToken

# Personal tokens and OAuth grants; a server's own token is not the user's to revoke.
LISTED_KINDS = (ApiToken.Kind.API, ApiToken.Kind.OAUTH)


def approved_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Like login_required, and a session whose user was since un-approved or
    deactivated is ended instead of trusted."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not (user.is_active and user.is_approved):
            logout(request)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def root(request: HttpRequest) -> HttpResponse:
    """/hub/: the home page for people who are logged in, the login page otherwise."""
    return redirect("home" if request.user.is_authenticated else "account_login")


class TokenPage(View):
    """/hub/token: create a token (the secret is shown once), list and revoke."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponse]:
        return approved_login_required(super().as_view(**initkwargs))

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, TokenForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TokenForm(request.POST)
        if not form.is_valid():
            return self.render(request, form, status=400)
        try:
            token, raw = services.issue_token(
                request.user,
                scopes=form.cleaned_data["scopes"],
                note=form.cleaned_data["note"],
                expires_in=form.cleaned_data["expires_in"],
            )
        except services.TokenScopeError as exc:
            form.add_error("scopes", str(exc))
            return self.render(request, form, status=400)
        # rendered, not redirected: the secret must never be stored, even in a message cookie
        return self.render(request, TokenForm(), new_token=raw, new_token_obj=token)

    def render(
        self, request: HttpRequest, form: TokenForm, *, status: int = 200, **extra: Any
    ) -> HttpResponse:
        tokens = request.user.api_tokens.filter(kind__in=LISTED_KINDS).order_by("-created")
        context = {"form": form, "tokens": tokens, "nav": "token", **extra}
        return render(request, "accounts/token.html", context, status=status)


@require_POST
@approved_login_required
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user, kind__in=LISTED_KINDS)
    services.revoke_token(token, by=request.user.username)
    return redirect("token")
