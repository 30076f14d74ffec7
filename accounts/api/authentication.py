"""DRF authentication: `Authorization: token|bearer <t>` and the hub session.

Both produce an accounts.identity.Identity on `request.auth`; views check
scopes against it. `request.user` is the hub user (None for services)."""

from __future__ import annotations

from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import identity, tokens
from accounts.identity import Identity


class HubTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[object, Identity] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        keyword = header.strip().partition(" ")[0]
        if keyword.lower() not in self.keywords:
            return None
        raw = tokens.from_authorization(header)
        who = identity.resolve_token(raw) if raw else None
        if who is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token")
        return who.user, who

    def authenticate_header(self, request: Request) -> str:
        return "token"


class _Csrf(CsrfViewMiddleware):
    def _reject(self, request: object, reason: str) -> str:
        return reason


def _xsrf_token(request: Request) -> str | None:
    """The token where JupyterHub's own front-end puts it (jupyterhub/_xsrf_utils.py:
    the `_xsrf` argument, then X-XSRFToken, then X-CSRFToken)."""
    return (
        request.query_params.get("_xsrf")
        or request.META.get("HTTP_X_XSRFTOKEN")
        or request.META.get("HTTP_X_CSRFTOKEN")
    )


class HubSessionAuthentication(authentication.BaseAuthentication):
    """The browser's hub cookie. Unsafe methods need the CSRF token (XSRF),
    checked by Django's CSRF middleware against the `_xsrf_hub` cookie."""

    def authenticate(self, request: Request) -> tuple[object, Identity] | None:
        user = getattr(request._request, "user", None)
        if user is None or not user.is_authenticated or not user.is_approved:
            return None
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            token = _xsrf_token(request)
            if token:
                request._request.META["HTTP_X_CSRFTOKEN"] = token  # where Django looks
            check = _Csrf(lambda req: None)
            check.process_request(request._request)
            reason = check.process_view(request._request, None, (), {})
            if reason:
                raise exceptions.PermissionDenied(f"XSRF check failed: {reason}")
        session_id = identity.session_id_for(request._request.session)
        return user, identity.for_session(user, session_id)
