"""Headers every hub response carries."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# The JupyterHub API version we speak; jupyterhub-singleuser reads this header.
JUPYTERHUB_VERSION = "6.1.1"

# JupyterHub: pages may not be framed; API responses load nothing at all.
# Hub pages keep their scripts in /hub/static/ (no inline script), so
# script-src 'self' holds for our templates and for the Django admin.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


class HubHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-JupyterHub-Version"] = JUPYTERHUB_VERSION
        if "Content-Security-Policy" not in response:
            api = request.path.startswith("/hub/api/")
            response["Content-Security-Policy"] = API_CSP if api else PAGE_CSP
        return response
