"""System checks for settings that are valid one by one but not together
(`manage.py check`, and every start of the hub)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register()
def check_subdomain_cookies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With per-user hosts, a cookie Domain would hand the hub's session and
    CSRF cookies to every user's server on a sibling host."""
    if not settings.HUB_SUBDOMAIN_HOST:
        return []
    return [
        Error(
            f"{name} is {getattr(settings, name)!r} but HUB_SUBDOMAIN_HOST is set",
            hint="Leave it None: the hub's cookies must stay on the hub's own host.",
            id="hubsite.E001",
        )
        for name in ("SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN")
        if getattr(settings, name) is not None
    ]


@register()
def check_subdomain_hub_host(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The hub belongs on the bare subdomain host (JupyterHub's public_url
    defaults to subdomain_host); users' hosts take scheme and port from it."""
    domain = settings.HUB_SUBDOMAIN_HOST
    hub = urlsplit(settings.HUB_PUBLIC_URL).hostname or ""
    if not domain or hub == domain:
        return []
    return [
        Warning(
            f"HUB_PUBLIC_URL is on {hub!r}, not on HUB_SUBDOMAIN_HOST {domain!r}",
            hint=f"Serve the hub at https://{domain}/ so users' hosts are its subdomains.",
            id="hubsite.W001",
        )
    ]
