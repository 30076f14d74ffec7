"""Sign-up policy for django-allauth: open or closed, approval required or not.

An unapproved user is refused at allauth's `pre_login` hook, the single point
every login passes through (password login and the login that follows a
sign-up), so they see "waiting for approval" and get no session. Logout's
OAuth-token revocation lives in accounts.signals (user_logged_out)."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class HubAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.HUB_SIGNUP_OPEN

    def clean_username(self, username: str, shallow: bool = False) -> str:
        # JupyterHub normalizes names to lowercase; so do we, before validation
        return super().clean_username(username.strip().lower(), shallow=shallow)

    def save_user(self, request: HttpRequest, user, form, commit: bool = True):
        user.is_approved = not settings.HUB_SIGNUP_REQUIRES_APPROVAL
        return super().save_user(request, user, form, commit=commit)

    def pre_login(self, request: HttpRequest, user, **kwargs: Any) -> HttpResponse | None:
        refused = super().pre_login(request, user, **kwargs)
        if refused is not None or getattr(user, "is_approved", True):
            return refused
        # no half-login stays behind (allauth's stashed login, authentication
        # records): the visitor is anonymous, so the whole session can go
        request.session.flush()
        signup = bool(kwargs.get("signup"))
        context = {"username": user.get_username(), "just_signed_up": signup}
        # a fresh sign-up succeeded (200); a login attempt was refused (403)
        return render(
            request, "account/awaiting_approval.html", context, status=200 if signup else 403
        )
