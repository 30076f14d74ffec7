"""Headers every hub response carries."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# The JupyterHub API version we speak; jupyterhub-singleuser reads this header.
JUPYTERHUB_VERSION = "6.1.1"


class HubHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-JupyterHub-Version"] = JUPYTERHUB_VERSION
        return response
