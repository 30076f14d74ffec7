"""Pure routing core: which upstream a request path goes to.

Values in, values out; no I/O. The addon classifies a path once
(`classify`) and then looks the user up in a `RouteTable`, whose cost does not
depend on how many routes it holds (two dict lookups)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

# Encoded '.', '/' and '\' : a backend (or the hub) may decode them into
# traversal, so they are refused where they could change whose server is meant.
_ENCODED_TRICK = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


class Route(NamedTuple):
    prefix: str  # "/user/alice/" or "/user/alice/named/"
    target: str  # as the hub sent it, e.g. "http://127.0.0.1:41234"
    scheme: str
    host: str
    port: int
    user: str
    server_name: str


class PathKind:
    HUB = 0  # anything not under /user/<name>/ : forward to the hub unchanged
    USER = 1  # /user/<name>[/...]
    BAD = 2  # refused with 400
    STREAM = 3  # a hub path that streams for minutes (spawn progress): to the stream server


class Classified(NamedTuple):
    kind: int
    user: str = ""
    segment: str = ""  # the segment after the user name (maybe a server name)
    reason: str = ""


HUB = Classified(PathKind.HUB)
STREAM = Classified(PathKind.STREAM)


def _bad(reason: str) -> Classified:
    return Classified(PathKind.BAD, reason=reason)


def classify(path: str) -> Classified:
    """Decide what a raw request target (path + query) is about.

    Decisions use a normalised view (empty segments from double slashes are
    ignored, so `//user//alice/` still means alice), but the request is
    forwarded unchanged. Dot segments, backslashes and encoded dots/slashes in
    the /user/<name>/<server>/ part are refused: they are the classic ways to
    make a path mean one user to the router and another to a backend."""
    raw = path.split("?", 1)[0]
    if not raw.startswith("/"):
        return _bad("request target must be an absolute path")
    if "\\" in raw:
        return _bad("backslash in path")
    segments = [s for s in raw.split("/") if s]
    for segment in segments:
        if segment in (".", ".."):
            return _bad("dot segment in path")
        if "%" in segment and _decodes_to_dots(segment):
            return _bad("encoded dot segment in path")
    if not segments or segments[0] != "user":
        return STREAM if _is_progress(segments) else HUB
    if len(segments) < 2:
        return HUB  # "/user/" alone: the hub answers
    name = segments[1]
    third = segments[2] if len(segments) > 2 else ""
    if _ENCODED_TRICK.search(name) or _ENCODED_TRICK.search(third):
        return _bad("encoded '.', '/' or '\\' in the user prefix")
    return Classified(PathKind.USER, user=name, segment=third)


def _is_progress(segments: list[str]) -> bool:
    """/hub/api/users/<name>/server/progress and .../servers/<name>/progress.
    Loose on purpose: the stream server runs the hub's own views, so a path
    sent to the wrong one of the two is still answered alike."""
    return len(segments) >= 6 and segments[-1] == "progress" and segments[:3] == _USERS_API


_USERS_API = ["hub", "api", "users"]


def _decodes_to_dots(segment: str) -> bool:
    decoded = re.sub(r"%2e", ".", segment, flags=re.IGNORECASE)
    return decoded in (".", "..")


def parse_route(prefix: str, data: Mapping[str, Any]) -> Route:
    """A Route from the hub's JSON; ValueError when it cannot be used."""
    target = str(data["target"])
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unusable target {target!r} for {prefix}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    user = str(data.get("user") or "")
    server_name = str(data.get("server_name") or "")
    expected = f"/user/{user}/{server_name}/" if server_name else f"/user/{user}/"
    if not user or prefix != expected:
        raise ValueError(f"route prefix {prefix!r} does not match its user/server")
    return Route(prefix, target, parts.scheme, parts.hostname, port, user, server_name)


class RouteTable:
    """Routes keyed by user, then by server name ('' = default server).

    Longest prefix wins: /user/<name>/<server>/ before /user/<name>/. A user
    name is matched exactly (case-sensitive), never by prefix."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, Route]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def lookup(self, user: str, segment: str) -> Route | None:
        servers = self._users.get(user)
        if servers is None:
            return None
        if segment:
            named = servers.get(segment)
            if named is not None and named.server_name:
                return named
        return servers.get("")

    def get(self, prefix: str) -> Route | None:
        user, server = split_prefix(prefix)
        return self._users.get(user, {}).get(server)

    def set(self, route: Route) -> None:
        servers = self._users.setdefault(route.user, {})
        if route.server_name not in servers:
            self._size += 1
        servers[route.server_name] = route

    def remove(self, prefix: str) -> None:
        user, server = split_prefix(prefix)
        servers = self._users.get(user)
        if servers is not None and servers.pop(server, None) is not None:
            self._size -= 1
            if not servers:
                del self._users[user]

    def replace(self, routes: Iterable[Route]) -> None:
        """Swap in a complete table (a full refresh drops routes of deleted rows)."""
        fresh = RouteTable()
        for route in routes:
            fresh.set(route)
        self._users, self._size = fresh._users, fresh._size

    def prefixes(self) -> list[str]:
        return [r.prefix for servers in self._users.values() for r in servers.values()]

    def routes(self) -> dict[str, dict[str, str]]:
        """The table in the hub's JSON shape (what `build_routes` reads back)."""
        return {
            r.prefix: {"target": r.target, "user": r.user, "server_name": r.server_name}
            for servers in self._users.values()
            for r in servers.values()
        }


def split_prefix(prefix: str) -> tuple[str, str]:
    """'/user/alice/' -> ('alice', ''), '/user/alice/lab1/' -> ('alice', 'lab1')."""
    parts = [p for p in prefix.split("/") if p]
    if len(parts) not in (2, 3) or parts[0] != "user":
        raise ValueError(f"not a route prefix: {prefix!r}")
    return parts[1], parts[2] if len(parts) == 3 else ""


def apply_changes(table: RouteTable, changes: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Apply an incremental update (None = removed); returns prefixes skipped as unusable."""
    skipped = []
    for prefix, data in changes.items():
        try:
            if data is None:
                table.remove(prefix)
            else:
                table.set(parse_route(prefix, data))
        except (ValueError, KeyError, TypeError):
            skipped.append(prefix)
    return skipped


def build_routes(routes: Mapping[str, Mapping[str, Any]]) -> tuple[list[Route], list[str]]:
    """Parse a full table; unusable entries are skipped (and reported), never guessed."""
    good, skipped = [], []
    for prefix, data in routes.items():
        try:
            good.append(parse_route(prefix, data))
        except (ValueError, KeyError, TypeError):
            skipped.append(prefix)
    return good, skipped
