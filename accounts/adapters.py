"""Sign-up policy for django-allauth: open or closed, approval required or not.

An unapproved user is refused at allauth's `pre_login` hook, the single point
every login passes through (password login and the login that follows a
sign-up), so they see "waiting for approval" and get no session. Logout's
OAuth-token revocation lives in accounts.signals (user_logged_out)."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.client_address import client_address


class HubAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.HUB_SIGNUP_OPEN

    def get_client_ip(self, request: HttpRequest) -> str:
        # the address allauth's rate limits count: the real client's, not the router's
        return client_address(request)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys an account's failures by "<Host header>:<login>"; with any
        # Host accepted, a new Host would be a fresh set of tries on the same
        # account, and two hub replicas reached on different addresses would not
        # share a lockout. The account alone is the key, as the hub names it.
        login = credentials.get("email", credentials.get("username", ""))
        return "login:" + str(login).strip().lower()

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
        # the same clean-up allauth does for inactive users: no half-login stays behind
        clear_login(request)
        signup = bool(kwargs.get("signup"))
        context = {"username": user.get_username(), "just_signed_up": signup}
        # a fresh sign-up succeeded (200); a login attempt was refused (403)
        return render(
            request, "account/awaiting_approval.html", context, status=200 if signup else 403
        )
