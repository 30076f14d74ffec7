"""Errors in JupyterHub's shape: `{"status": <code>, "message": "..."}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(v) for v in detail)
    return str(detail)


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "Request body too large"
    default_code = "too_large"


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "Already exists"
    default_code = "conflict"


def hub_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found")
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, ValidationError):
        exc = exceptions.ValidationError("; ".join(exc.messages))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # JupyterHub answers 403, not 401, to missing or invalid credentials;
        # jupyterhub-singleuser relies on it ("not a valid user").
        exc = exceptions.PermissionDenied(str(exc.detail))
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = getattr(exc, "detail", str(exc))
    response.data = {"status": response.status_code, "message": _flatten(detail)}
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path == "/hub/api" or request.path.startswith("/hub/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JupyterHub's JSON error under /hub/api, the page elsewhere."""
    if _is_api(request):
        message = f"No such API endpoint: {request.path}"
        return JsonResponse({"status": 404, "message": message}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a bug's answer is JSON under /hub/api too (details in the log)."""
    if _is_api(request):
        return JsonResponse({"status": 500, "message": "Internal server error"}, status=500)
    return defaults.server_error(request)
