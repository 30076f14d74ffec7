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


@register()
def check_local_isolation(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Local servers run users' code: say at start when they cannot be kept
    from the hub's secrets, not at the first failed spawn."""
    import os
    import shutil

    from servers.spawners.isolation import resolve_mode

    if settings.HUB_SPAWNER != "local":
        return []
    mode = resolve_mode(settings.HUB_LOCAL_ISOLATION, euid=os.geteuid())
    if mode == "users" and os.geteuid() != 0:
        return [
            Error(
                "HUB_LOCAL_ISOLATION=users needs the hub to run as root",
                hint="Run the hub as root, or use sandbox (bubblewrap) or auto.",
                id="hubsite.E010",
            )
        ]
    if mode in ("users", "sandbox") and shutil.which("bwrap") is None:
        return [
            Error(
                f"HUB_LOCAL_ISOLATION={settings.HUB_LOCAL_ISOLATION} ({mode}) needs bubblewrap",
                hint="apt-get install bubblewrap, or HUB_LOCAL_ISOLATION=none if users trust "
                "each other and the hub's operator with everything.",
                id="hubsite.E011",
            )
        ]
    if mode == "none" and settings.HUB_SIGNUP_OPEN:
        return [
            Warning(
                "HUB_LOCAL_ISOLATION=none with open sign-up: anyone who signs up can read "
                "the hub's secrets and database from their server",
                hint="Use auto (the default), or HUB_SIGNUP_OPEN=false.",
                id="hubsite.W010",
            )
        ]
    return []


@register()
def check_kubernetes_spawner(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """HUB_SPAWNER=kubernetes needs a cluster and a namespace; found out at
    start rather than at the first spawn."""
    import os
    from pathlib import Path

    from servers import naming
    from servers.spawners.manifests import KNOWN_KEYS

    if settings.HUB_SPAWNER != "kubernetes":
        return []
    errors: list[CheckMessage] = []
    kubeconfig = settings.HUB_K8S_KUBECONFIG
    if kubeconfig and not Path(kubeconfig).is_file():
        errors.append(
            Error(
                f"HUB_K8S_KUBECONFIG names {kubeconfig!r}, which is not a file",
                hint="Point it at a kubeconfig, or unset it inside the cluster.",
                id="hubsite.E020",
            )
        )
    if not kubeconfig and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        errors.append(
            Error(
                "HUB_SPAWNER=kubernetes but no cluster: not in a pod and no kubeconfig",
                hint="Set HUB_K8S_KUBECONFIG (or KUBECONFIG), or run the hub in the cluster.",
                id="hubsite.E021",
            )
        )
    if not settings.HUB_K8S_NAMESPACE:
        errors.append(
            Error(
                "HUB_SPAWNER=kubernetes but HUB_K8S_NAMESPACE is not set",
                hint="Set HUB_K8S_NAMESPACE to the namespace user pods run in.",
                id="hubsite.E022",
            )
        )
    instance = settings.HUB_K8S_INSTANCE
    if not naming.is_plain(instance) or len(instance) > 63:
        errors.append(
            Error(
                f"HUB_K8S_INSTANCE {settings.HUB_K8S_INSTANCE!r} is not a plain label value",
                hint="Use lowercase letters, digits and single dashes, e.g. 'hub'.",
                id="hubsite.E023",
            )
        )
    unknown = sorted(set(settings.HUB_K8S_SPAWNER_DEFAULTS) - KNOWN_KEYS)
    if unknown:
        errors.append(
            Error(
                f"HUB_K8S_SPAWNER_DEFAULTS has unknown keys: {', '.join(unknown)}",
                hint="Keys are KubeSpawner's trait names (servers/spawners/manifests.py).",
                id="hubsite.E024",
            )
        )
    return errors
