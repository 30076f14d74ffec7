"""Headers every hub response carries, and the hub kept off users' hosts."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.http.request import split_domain_port

from servers import hosts

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


class HubHostOnlyMiddleware:
    """With HUB_SUBDOMAIN_HOST, the router sends every non-/user/ path on a
    user's host (alice.hub.example.org/hub/...) to the hub. The hub answers
    them on its own host only, like JupyterHub's PrefixRedirectHandler: a login
    there would put the hub's session cookie on an origin where the user's
    server runs scripts. Safe methods are redirected, others refused."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        domain = settings.HUB_SUBDOMAIN_HOST
        if domain and self._on_user_host(request, domain):
            target = hosts.hub_host() + request.get_full_path()
            if request.method in ("GET", "HEAD"):
                return HttpResponseRedirect(target)
            return HttpResponseForbidden(f"The hub answers at {hosts.hub_host()} only.\n")
        return self.get_response(request)

    @staticmethod
    def _on_user_host(request: HttpRequest, domain: str) -> bool:
        host = split_domain_port(request.get_host())[0]
        hub = urlsplit(settings.HUB_PUBLIC_URL).hostname or ""
        return host != hub and host.endswith("." + domain)
