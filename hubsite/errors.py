"""The hub's answer when its database is unreachable: 503 with Retry-After
(a JSON error on the API, a page elsewhere), not a 500 and never a
traceback, like JupyterHub's catch_db_error. Django calls handler500 inside
its `except`, so the exception is sys.exc_info()'s."""

from __future__ import annotations

import sys

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from accounts.api import errors as api_errors

MESSAGE = "The hub's database is unavailable right now. Please try again in a moment."
RETRY_AFTER = "10"


def server_error(request: HttpRequest) -> HttpResponse:
    if not isinstance(sys.exc_info()[1], DatabaseError):
        return api_errors.server_error(request)  # JSON under /hub/api, the page elsewhere
    if request.path.startswith("/hub/api/"):
        response: HttpResponse = JsonResponse({"status": 503, "message": MESSAGE}, status=503)
    else:
        page = loader.get_template("503.html").render({"message": MESSAGE})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = RETRY_AFTER
    return response
