"""Scope checks of one API request, with JupyterHub's filter rules.

`accounts.scopes.allows` answers for one target; the API also needs the
rules JupyterHub applies when the target is a *user*: a `!server=alice/x`
filter lets you see alice (the owner of a server you may read), and a
`!group=` filter needs the target's groups, which are fetched only when such a
filter is actually held. The caller's scopes are indexed once per scope set,
so a 200-user page pays for parsing them once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from django.db.models import Q
from rest_framework import exceptions

from accounts import scopes as sc
from accounts.identity import Identity
from accounts.models import Group

Filters = frozenset[tuple[str, str]]
ALL: Filters = frozenset({("", "")})
NONE: Filters = frozenset()


class Access:
    """What the caller (an Identity) may do, with per-scope filter caches."""

    def __init__(self, who: Identity | None) -> None:
        self.who = who

    def filters(self, scope: str) -> Filters:
        """The filters SCOPE is held under: ALL if unfiltered, NONE if not held."""
        if self.who is None:
            return NONE
        return index(self.who.scopes).get(scope, NONE)

    def is_unfiltered(self, scope: str) -> bool:
        return self.filters(scope) is ALL

    def needs_groups(self, scope: str) -> bool:
        return any(kind == "group" for kind, _ in self.filters(scope))

    def on_user(
        self, scope: str, name: str, groups: Iterable[str] | Callable[[], Iterable[str]] = ()
    ) -> bool:
        """Whether SCOPE is held for user NAME (whose GROUPS may be a thunk)."""
        return self._held(scope, name, lambda server: server.partition("/")[0] == name, groups)

    def on_server(
        self,
        scope: str,
        owner: str,
        server_name: str,
        groups: Iterable[str] | Callable[[], Iterable[str]] = (),
    ) -> bool:
        """Whether SCOPE is held for OWNER's server SERVER_NAME."""
        full = f"{owner}/{server_name}"
        return self._held(scope, owner, lambda server: server == full, groups)

    def _held(
        self,
        scope: str,
        owner: str,
        server_matches: Callable[[str], bool],
        groups: Iterable[str] | Callable[[], Iterable[str]],
    ) -> bool:
        """SCOPE held unfiltered, for OWNER, for a matching server, or for one of
        OWNER's groups (resolved only when a !group= filter needs them)."""
        found = self.filters(scope)
        if found is ALL:
            return True
        group_names: set[str] | None = None
        for kind, value in found:
            if kind == "user" and value == owner:
                return True
            if kind == "server" and server_matches(value):
                return True
            if kind == "group":
                if group_names is None:
                    group_names = set(groups() if callable(groups) else groups)
                if value in group_names:
                    return True
        return False

    def on_group(self, scope: str, group: str) -> bool:
        found = self.filters(scope)
        return found is ALL or ("group", group) in found

    def user_query(self, scope: str) -> Q | None:
        """A User filter matching the users SCOPE is held for; None = all users.

        Raises PermissionDenied when the scope is not held at all."""
        found = self.filters(scope)
        if found is ALL:
            return None
        if not found:
            raise denied(scope)
        users = {v for k, v in found if k == "user"}
        users |= {v.partition("/")[0] for k, v in found if k == "server"}
        groups = {v for k, v in found if k == "group"}
        query = Q(username__in=sorted(users))
        if groups:
            members = Group.members.through.objects.filter(group__name__in=sorted(groups))
            query |= Q(pk__in=members.values("user_id"))
        return query

    def require(self, allowed: bool, *scopes: str) -> None:
        if not allowed:
            raise denied(*scopes)

    def require_user(self, name: str, *scopes: str, groups: Callable[[], Iterable[str]]) -> None:
        """Pass if any of SCOPES is held for user NAME (JupyterHub's needs_scope)."""
        if not any(self.on_user(s, name, groups) for s in scopes):
            raise denied(*scopes)


@lru_cache(maxsize=1024)
def index(held: frozenset[str]) -> dict[str, Filters]:
    """scope name -> the filters it is held under, parsed once per scope set
    (identity caches its expansions, so a token's set is the same object)."""
    found: dict[str, set[tuple[str, str]]] = {}
    for scope in held:
        name, kind, value = sc.split(scope)
        found.setdefault(name, set()).add((kind, value))
    return {
        name: ALL if ("", "") in filters else frozenset(filters) for name, filters in found.items()
    }


def denied(*scopes: str) -> exceptions.PermissionDenied:
    return exceptions.PermissionDenied(
        "Action is not authorized with current scopes; requires any of [{}]".format(
            ", ".join(scopes)
        )
    )
