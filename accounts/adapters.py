"""Sign-up policy for django-allauth: open or closed, approval required or not."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class HubAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.HUB_SIGNUP_OPEN

    def clean_username(self, username: str, shallow: bool = False) -> str:
        # JupyterHub normalizes names to lowercase; so do we, before validation
        return super().clean_username(username.strip().lower(), shallow=shallow)

    def save_user(self, request: HttpRequest, user, form, commit: bool = True):
        user.is_approved = not settings.HUB_SIGNUP_REQUIRES_APPROVAL
        return super().save_user(request, user, form, commit=commit)
