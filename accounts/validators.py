"""Username rules: a name becomes a URL segment, a directory and a DNS label."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
RESERVED = {"hub", "user", "api", "admin", "static", "services", "root"}


def validate_username(value: str) -> None:
    if not USERNAME_RE.fullmatch(value or ""):
        raise ValidationError(
            "Use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.",
            code="invalid_username",
        )
    if value in RESERVED:
        raise ValidationError(f"'{value}' is reserved.", code="reserved_username")


username_validators = [validate_username]

SERVER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def validate_server_name(value: str) -> None:
    """'' is the default server; named servers follow the username rules."""
    if value == "":
        return
    if not SERVER_NAME_RE.fullmatch(value):
        raise ValidationError(
            "Server names use 1-63 lowercase letters, digits, '.', '_' or '-'.",
            code="invalid_server_name",
        )


def normalize_username(raw: str) -> str:
    """One person, one name: `Alice`, ` alice ` and `alice` are the same user,
    whichever way they sign in (JupyterHub lowercases names too)."""
    return (raw or "").strip().lower()


_GROUP_SEPARATORS = re.compile(r"[\s/\\:]+")


def hub_group_name(external: str) -> str | None:
    """The hub group an LDAP or OpenID Connect group becomes (`Data Science`
    -> `data-science`); None for a name that cannot be one (it is skipped)."""
    name = _GROUP_SEPARATORS.sub("-", (external or "").strip().lower()).strip("-")
    return name if USERNAME_RE.fullmatch(name) else None
