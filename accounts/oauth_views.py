"""Thin HTTP edges of the OAuth provider; the rules live in accounts.oauth."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts import identity, oauth
from accounts.oauth import OAuthError


@never_cache
@require_GET
def authorize(request: HttpRequest) -> HttpResponse:
    """GET /hub/api/oauth2/authorize: needs the hub session; no consent page
    (only users who may use the server get a code, as JupyterHub does for own servers)."""
    user = request.user
    if not (user.is_authenticated and user.is_approved):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    session_id = identity.session_id_for(request.session)
    try:
        target = oauth.authorize(user, request.GET, session_id=session_id)
    except OAuthError as exc:
        if exc.redirect_uri:
            return HttpResponseRedirect(exc.redirect_url())
        return JsonResponse({"status": exc.status, "message": exc.description}, status=exc.status)
    return HttpResponseRedirect(target)


@csrf_exempt  # called server to server; the client authenticates with its secret
@never_cache
@require_POST
def token(request: HttpRequest) -> HttpResponse:
    """POST /hub/api/oauth2/token (form-encoded): code -> access token."""
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "the body must be form-encoded")
        try:
            params = request.POST
        except SuspiciousOperation as exc:  # body too large, too many fields
            raise OAuthError("invalid_request", str(exc)) from None
        reply = oauth.exchange_code(params, request.headers.get("Authorization", ""))
    except OAuthError as exc:
        response = JsonResponse(exc.as_json(), status=exc.status)
        if exc.status == 401:
            response["WWW-Authenticate"] = 'Basic realm="hub"'
        return response
    return JsonResponse(reply)
