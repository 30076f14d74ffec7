"""Where a browser finds a user's server: JupyterHub's `subdomain_host`.

With HUB_SUBDOMAIN_HOST=hub.example.org, alice's servers are on their own
origin, `<scheme>://alice.hub.example.org<port>/user/alice/...` (the path keeps
its prefix), and the hub stays on HUB_PUBLIC_URL, so code running in a user's
server cannot use the hub's cookies or read another user's server. Scheme and
port come from HUB_PUBLIC_URL, as JupyterHub takes them from subdomain_host.
Off (""), every URL stays relative to the hub's origin, as before.

Usernames that are not DNS labels (`john.doe`, `j_smith`): JupyterHub escapes
them into a label (its `subdomain_hook`), but our router cannot map an escaped
label back to a name: it serves `<label>.HOST` only for `/user/<label>/` and
sends `/user/<name>/` of any other name to the hub's page
(routing/router/edges.py, SubdomainRouting). So such a user has no host
(`user_host` is ""), and `is_hostless` lets the hub refuse to start a server
nobody could reach, instead of escaping names the router would answer 404 for.
is_dns_label is the router's own rule (routing/hostnames.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from routing.hostnames import is_dns_label

__all__ = ["absolute_url", "browser_url", "hub_host", "is_dns_label", "is_hostless", "user_host"]


def is_hostless(username: str) -> bool:
    """True when servers get their own hosts but USERNAME cannot be one."""
    return bool(settings.HUB_SUBDOMAIN_HOST) and not is_dns_label(username)


def hub_host() -> str:
    """The hub's `scheme://host[:port]`, from HUB_PUBLIC_URL: where browsers
    log in and authorize servers (jupyterhub-singleuser's JUPYTERHUB_HOST)."""
    parts = urlsplit(settings.HUB_PUBLIC_URL)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def user_host(username: str) -> str:
    """`scheme://<username>.<HUB_SUBDOMAIN_HOST>[:port]`, JupyterHub's `User.host`;
    "" when subdomains are off or the name has no host (see the module docstring)."""
    domain = settings.HUB_SUBDOMAIN_HOST
    if not domain or not is_dns_label(username):
        return ""
    parts = urlsplit(settings.HUB_PUBLIC_URL)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'https'}://{username}.{domain}{port}"


def browser_url(username: str, path: str) -> str:
    """PATH (/user/<name>/...) as the hub sends a browser there: absolute on the
    user's host with subdomains, else unchanged (the hub's own origin)."""
    return user_host(username) + path


def absolute_url(username: str, path: str) -> str:
    """PATH as a full URL: on the user's host, else on HUB_PUBLIC_URL ("" when
    neither is known, JupyterHub's `full_url: null`)."""
    base = user_host(username) or settings.HUB_PUBLIC_URL
    return base + path if base else ""
