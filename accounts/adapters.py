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
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import policy, services
from accounts.client_address import client_address
from accounts.validators import normalize_username


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
        username = super().clean_username(normalize_username(username), shallow=shallow)
        # a sign-up the policy would refuse at login is refused now, account-less
        verdict = policy.decide(username, (), is_admin=False, policy=policy.configured_policy())
        if not verdict.allowed and not policy.configured_policy().allowed_groups:
            raise ValidationError("This name is not allowed to sign up on this hub.")
        return username

    def save_user(self, request: HttpRequest, user, form, commit: bool = True):
        user.is_approved = not settings.HUB_SIGNUP_REQUIRES_APPROVAL
        return super().save_user(request, user, form, commit=commit)

    def pre_login(self, request: HttpRequest, user, **kwargs: Any) -> HttpResponse | None:
        refused = super().pre_login(request, user, **kwargs)
        if refused is not None:
            return refused
        groups = [g.name for g in user.hub_groups.all()]
        verdict = policy.decide(
            user.username, groups, is_admin=user.is_superuser, policy=policy.configured_policy()
        )
        if not verdict.allowed:
            clear_login(request)
            context = {"username": user.get_username()}
            return render(request, "account/not_allowed.html", context, status=403)
        if verdict.make_admin and not (user.is_superuser and user.is_approved):
            # named by the operator (HUB_ADMIN_USERS): admin, and nothing to approve
            services.set_admin(user, True)
            services.approve_users([user])
            user.is_approved = True
        if getattr(user, "is_approved", True):
            return None
        # the same clean-up allauth does for inactive users: no half-login stays behind
        clear_login(request)
        signup = bool(kwargs.get("signup"))
        context = {"username": user.get_username(), "just_signed_up": signup}
        # a fresh sign-up succeeded (200); a login attempt was refused (403)
        return render(
            request, "account/awaiting_approval.html", context, status=200 if signup else 403
        )
