"""Strict readers for HUB_* environment variables.

Configuration errors must stop the process at start, not at the first request,
so every reader raises ImproperlyConfigured on a value it does not understand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from routing.hostnames import is_dns_name

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (got {raw!r})")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number (got {raw!r})") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum} (got {value})")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number (got {raw!r})") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum} (got {value})")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def env_json_object(name: str) -> dict[str, Any]:
    """A JSON object from NAME, or from the file named by NAME_FILE; {} when unset."""
    raw = os.environ.get(name, "")
    path = os.environ.get(f"{name}_FILE")
    if not raw and path:
        try:
            raw = Path(path).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc}") from None
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object (got {type(value).__name__})")
    return value


def env_dns_name(name: str) -> str:
    """A DNS name such as hub.example.org, lowercased, without a trailing dot;
    "" when unset. Anything else (a URL, a port, an underscore) is an error:
    user host names are made by putting a username in front of it."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower().rstrip(".")
    if not value:
        return ""
    if not is_dns_name(value):
        raise ImproperlyConfigured(
            f"{name} must be a DNS name such as hub.example.org, "
            f"without scheme, port or path (got {raw!r})"
        )
    return value


def env_secret(name: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Kubernetes Secrets)."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc}") from None
    return ""


def persisted_secret(path: Path, nbytes: int = 48) -> str:
    """Read a generated secret from PATH, creating it (mode 0600) on first use.

    The embedded default needs no configuration, yet its secrets must survive
    restarts (sessions, router token) and must never be readable by others.
    """
    import secrets

    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def parse_database_url(url: str) -> dict[str, object]:
    """Django DATABASES entry from postgres://, mysql:// or sqlite:/// URLs."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    engines = {
        "postgres": "django.db.backends.postgresql",
        "postgresql": "django.db.backends.postgresql",
        "mysql": "django.db.backends.mysql",
        "mariadb": "django.db.backends.mysql",
        "sqlite": "hubsite.sqlite",  # Django's, see hubsite/sqlite/base.py
    }
    engine = engines.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"HUB_DATABASE_URL: unsupported scheme {parts.scheme!r} "
            "(use postgresql://, mysql:// or sqlite:///)"
        )
    if parts.scheme == "sqlite":
        # sqlite:////abs/path is absolute, sqlite:///rel/path relative
        return {"ENGINE": engine, "NAME": unquote(parts.path[1:])}
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("HUB_DATABASE_URL: the database name is missing")
    return {
        "ENGINE": engine,
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


def env_networks(name: str, default: list[str]) -> tuple:
    """IP networks (CIDR) or single addresses, comma-separated; a typo is an
    error rather than a proxy silently not trusted (or an address trusted)."""
    import ipaddress

    networks = []
    for value in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def bind_address(url: str, name: str = "HUB_BIND_URL") -> str:
    """`http://127.0.0.1:8081` -> `127.0.0.1:8081`: where a server named by
    the URL in variable NAME binds (gunicorn's --bind, the stream server's)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ImproperlyConfigured(
            f"{name} must be http://HOST:PORT, where the server listens (got {url!r})"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"
