"""Pure RBAC: JupyterHub's scopes, their hierarchy, default roles and filters.

A scope is `name` or `name!user=alice`, `name!server=alice/x`, `name!group=g`,
`name!service=s`. Holding a parent scope grants its subscopes with the same
filter. This module takes and returns plain values; accounts.services resolves
`!group=` filters against the database before calling it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# parent -> direct subscopes, as JupyterHub 6.1.1's scopes.scope_definitions;
# tests/accounts/test_scope_table.py compares them (and SELF_SCOPES, ROLES) with
# the installed JupyterHub and lists every deliberate difference with its reason.
SUBSCOPES: dict[str, tuple[str, ...]] = {
    "admin-ui": (),
    "admin:users": ("admin:auth_state", "users", "read:roles:users", "delete:users"),
    "admin:auth_state": (),
    "users": ("read:users", "list:users", "users:activity"),
    "delete:users": (),
    "list:users": ("read:users:name",),
    "read:users": (
        "read:users:name",
        "read:users:groups",
        "read:users:activity",
    ),
    "read:users:name": (),
    "read:users:groups": (),
    "read:users:activity": (),
    "read:roles": ("read:roles:users", "read:roles:services", "read:roles:groups"),
    "read:roles:users": (),
    "read:roles:services": (),
    "read:roles:groups": (),
    "users:activity": ("read:users:activity",),
    "admin:servers": ("admin:server_state", "servers"),
    "admin:server_state": (),
    "servers": ("read:servers", "start:servers", "delete:servers"),
    "read:servers": ("read:users:name",),
    "start:servers": (),
    "delete:servers": (),
    "tokens": ("read:tokens",),
    "read:tokens": (),
    "admin:groups": ("groups", "read:roles:groups", "delete:groups"),
    "groups": ("read:groups", "list:groups"),
    "list:groups": ("read:groups:name",),
    "read:groups": ("read:groups:name",),
    "read:groups:name": (),
    "delete:groups": (),
    "admin:services": ("list:services", "read:services", "read:roles:services"),
    "list:services": ("read:services:name",),
    "read:services": ("read:services:name",),
    "read:services:name": (),
    "read:hub": (),
    "access:servers": (),
    "access:services": (),
    "shares": ("access:servers", "read:shares", "users:shares", "groups:shares"),
    "read:shares": (),
    "users:shares": ("read:users:shares",),
    "read:users:shares": (),
    "groups:shares": ("read:groups:shares",),
    "read:groups:shares": (),
    "proxy": (),
    "shutdown": (),
    "read:metrics": (),
}

# What `self` means for a user: their own everything (JupyterHub _expand_self_scope).
SELF_SCOPES = (
    "servers",
    "read:users",
    "read:users:name",
    "read:users:groups",
    "read:users:activity",
    "users:activity",
    "read:servers",
    "start:servers",
    "delete:servers",
    "tokens",
    "read:tokens",
    "access:servers",
    "read:shares",
    "users:shares",
    "read:users:shares",
)

ROLES: dict[str, tuple[str, ...]] = {
    "user": ("self",),
    "admin": (
        "admin-ui",
        "admin:users",
        "admin:servers",
        "admin:services",
        "tokens",
        "admin:groups",
        "list:services",
        "read:services",
        "read:hub",
        "proxy",
        "shutdown",
        "access:services",
        "access:servers",
        "read:roles",
        "read:metrics",
        "shares",
    ),
    "server": ("users:activity!user", "access:servers!server"),
    "token": ("inherit",),
}

FILTER_KINDS = ("user", "server", "group", "service")


class ScopeError(ValueError):
    """A scope string that does not exist or has a malformed filter."""


@dataclass(frozen=True)
class Target:
    """What a request acts on; empty fields are not part of the target."""

    user: str = ""
    server: str = ""  # "owner/name"
    groups: frozenset[str] = frozenset()
    group: str = ""
    service: str = ""


def split(scope: str) -> tuple[str, str, str]:
    """`read:users!user=alice` -> ("read:users", "user", "alice")."""
    name, _, flt = scope.partition("!")
    if not flt:
        return name, "", ""
    kind, eq, value = flt.partition("=")
    return name, kind, value if eq else ""


def validate(scope: str) -> None:
    name, kind, value = split(scope)
    if name not in SUBSCOPES and name not in ("self", "inherit") and not name.startswith("custom:"):
        raise ScopeError(f"unknown scope: {name}")
    if "!" in scope and (kind not in FILTER_KINDS or not value):
        raise ScopeError(f"bad scope filter: {scope}")


def expand(scopes: Iterable[str], *, username: str = "", server: str = "") -> frozenset[str]:
    """All scopes implied by SCOPES, with `self`, `!user` and `!server` resolved.

    `username` is whose `self` this is; `server` ("owner/name") resolves the
    bare `!server` filter used by the server role."""
    out: set[str] = set()
    pending = list(scopes)
    while pending:
        scope = pending.pop()
        name, kind, value = split(scope)
        if name == "self":
            if username:
                pending.extend(f"{s}!user={username}" for s in SELF_SCOPES)
            continue
        if name == "inherit":
            continue
        if scope.endswith("!user") and "=" not in scope:
            if not username:
                continue
            kind, value = "user", username
        elif scope.endswith("!server") and "=" not in scope:
            if not server:
                continue
            kind, value = "server", server
        suffix = f"!{kind}={value}" if kind else ""
        full = name + suffix
        if full in out:
            continue
        out.add(full)
        pending.extend(sub + suffix for sub in SUBSCOPES.get(name, ()))
    return frozenset(out)


def role_scopes(role: str) -> tuple[str, ...]:
    try:
        return ROLES[role]
    except KeyError:
        raise ScopeError(f"unknown role: {role}") from None


def filters_for(held: frozenset[str], name: str) -> set[tuple[str, str]] | None:
    """The filters under which NAME is held: None if not held at all,
    {("", "")} if held unfiltered."""
    found: set[tuple[str, str]] = set()
    for scope in held:
        sname, kind, value = split(scope)
        if sname == name:
            found.add((kind, value))
    return found or None


def allows(held: frozenset[str], name: str, target: Target | None = None) -> bool:
    """Whether HELD grants scope NAME on TARGET (None: unfiltered use only)."""
    found = filters_for(held, name)
    if not found:
        return False
    if ("", "") in found:
        return True
    if target is None:
        return False
    for kind, value in found:
        if kind == "user" and target.user == value:
            return True
        if kind == "server" and target.server == value:
            return True
        if kind == "group" and (value in target.groups or target.group == value):
            return True
        if kind == "service" and target.service == value:
            return True
    return False


def allows_any(held: frozenset[str], name: str) -> bool:
    """Whether NAME is held under any filter: enough to enter a list endpoint."""
    return filters_for(held, name) is not None


def intersect(requested: frozenset[str], owner: frozenset[str]) -> frozenset[str]:
    """Scopes of REQUESTED that OWNER's scopes cover (for tokens and OAuth).

    A requested scope is kept when the owner holds it unfiltered, or with the
    same filter, or a user filter that covers a requested server filter."""
    kept: set[str] = set()
    for scope in requested:
        name, kind, value = split(scope)
        found = filters_for(owner, name)
        if not found:
            continue
        if (
            ("", "") in found
            or (kind, value) in found
            or (kind == "server" and ("user", value.partition("/")[0]) in found)
        ):
            kept.add(scope)
        elif not kind:
            kept.update(f"{name}!{k}={v}" for k, v in found)
    return frozenset(kept)
