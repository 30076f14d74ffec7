"""Everything the router says to the hub: the route table (full with ETag,
incremental with `since`, one-path lookups) and batched activity reports.

`HubClient` is the only place with network I/O to the hub (blocking, run in
threads). `RouteSync` keeps a RouteTable in step with it from the event loop:
the full table at start and every `full_every` seconds, changes every
`interval` seconds, and a lookup when a /user/... request misses. If the hub
cannot be reached the last table keeps serving and `stale` says so; a route
is only ever what the hub said."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from routing.router.table import (
    PathKind,
    Route,
    RouteTable,
    apply_changes,
    build_routes,
    classify,
    parse_route,
)

log = logging.getLogger("routing.router")


class HubUnavailable(Exception):
    """The hub did not answer usefully (connection error, timeout, 5xx, bad token)."""


@dataclass
class FullTable:
    version: str
    routes: dict[str, dict[str, Any]]


class HubClient:
    """Blocking calls to /hub/api/routes*; one requests.Session per thread."""

    def __init__(self, hub_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.api = hub_url.rstrip("/") + "/hub/api/routes"
        self.timeout = timeout
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self._headers)
        return session

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session().request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise HubUnavailable(f"{method} {url}: {exc}") from None
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise HubUnavailable(f"{method} {url}: HTTP {response.status_code}")
        return response

    def full(self, etag: str | None = None) -> FullTable | None:
        """The whole table; None when it still matches ETAG (304)."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        response = self._call("GET", self.api, headers=headers)
        if response.status_code == 304:
            return None
        body = self._json(response)
        return FullTable(version=str(body["version"]), routes=dict(body["routes"]))

    def since(self, version: str) -> FullTable:
        """Routes changed since VERSION (None values = removed)."""
        response = self._call("GET", self.api, params={"since": version})
        body = self._json(response)
        return FullTable(version=str(body["version"]), routes=dict(body["routes"]))

    def lookup(self, path: str) -> tuple[str, dict[str, Any]] | None:
        response = self._call("GET", self.api + "/lookup", params={"path": path})
        if response.status_code == 404:
            return None
        body = self._json(response)
        return str(body["prefix"]), dict(body["route"])

    def report_activity(self, activity: dict[str, str]) -> None:
        response = self._call("POST", self.api + "/activity", json=activity)
        if response.status_code >= 400:
            log.warning("hub refused activity report: HTTP %s", response.status_code)

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise HubUnavailable(f"unexpected HTTP {response.status_code} from the hub")
        try:
            return response.json()
        except ValueError:
            raise HubUnavailable("the hub answered with invalid JSON") from None


@dataclass
class SyncPolicy:
    interval: float = 1.0  # incremental pulls: at least every second
    full_every: float = 30.0  # full refresh drops routes of deleted rows
    # "no such route" answers are reused this long. Short on purpose: every miss is
    # forwarded to the hub's page anyway (which costs the hub more than a lookup), and
    # a client polling a server that just became ready must see it within ~0.1 s
    # (bench/router.py "route propagation", polling: 1 s here gave p99 ~0.8 s, 50 ms
    # gave p99 50-120 ms depending on how fast the hub renders its page).
    negative_ttl: float = 0.025
    max_lookups: int = 4  # concurrent lookups per process; beyond: treat as a miss
    activity_every: float = 5.0
    stale_backoff: float = 2.0


@dataclass
class RouteSync:
    client: HubClient
    table: RouteTable = field(default_factory=RouteTable)
    policy: SyncPolicy = field(default_factory=SyncPolicy)
    clock: Callable[[], float] = time.monotonic

    version: str | None = None
    stale: bool = True  # until the first full table arrives
    last_ok: float = 0.0
    _last_full: float = float("-inf")
    _negative: dict[str, float] = field(default_factory=dict)
    _inflight: dict[tuple[str, str], asyncio.Future[Route | None]] = field(default_factory=dict)
    _rechecks: dict[str, asyncio.Future[Route | None]] = field(default_factory=dict)
    _rechecked: dict[str, tuple[float, Route | None]] = field(default_factory=dict)
    activity: dict[str, float] = field(default_factory=dict)

    # --- table sync -----------------------------------------------------------------

    async def sync_once(self) -> None:
        """One pull: full (at start / periodically / after a failure) or incremental."""
        now = self.clock()
        if self.version is None or now - self._last_full >= self.policy.full_every:
            etag = self.version if not self.stale else None
            full = await asyncio.to_thread(self.client.full, etag)
            if full is not None:
                routes, skipped = build_routes(full.routes)
                self.table.replace(routes)
                self.version = full.version
                self._warn_skipped(skipped)
            self._last_full = now
        else:
            changes = await asyncio.to_thread(self.client.since, self.version)
            self._warn_skipped(apply_changes(self.table, changes.routes))
            self.version = changes.version
        self.last_ok = self.clock()
        if self.stale:
            log.info("route table in sync with the hub (%d routes)", len(self.table))
        self.stale = False

    async def sync_forever(self) -> None:
        while True:
            try:
                await self.sync_once()
                delay = self.policy.interval
            except (HubUnavailable, KeyError, TypeError, ValueError) as exc:
                if not self.stale:
                    log.warning("route table stale, keeping %d routes: %s", len(self.table), exc)
                self.stale = True
                delay = self.policy.stale_backoff
            await asyncio.sleep(delay)

    @staticmethod
    def _warn_skipped(skipped: list[str]) -> None:
        if skipped:
            log.warning("ignored unusable routes from the hub: %s", ", ".join(skipped[:10]))

    # --- misses ---------------------------------------------------------------------

    async def resolve(self, user: str, segment: str, path: str) -> Route | None:
        """Ask the hub about a path the table does not know. Negative answers are
        cached per user for `negative_ttl`, identical lookups share one call, and at
        most `max_lookups` run at once, so a flood of unknown names costs the hub
        little. Hub unreachable = no route (the request goes to the hub's page)."""
        now = self.clock()
        if self._negative.get(user, 0.0) > now:
            return None
        key = (user, segment)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if len(self._inflight) >= self.policy.max_lookups:
            return None
        future: asyncio.Future[Route | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        route: Route | None = None
        try:
            route = await self._lookup(path)
            if route is None:
                self._remember_miss(user, now)
        finally:
            del self._inflight[key]
            future.set_result(route)  # waiters never hang, even on cancellation
        return route

    async def _lookup(self, path: str) -> Route | None:
        try:
            found = await asyncio.to_thread(self.client.lookup, path)
            if found is None:
                return None
            route = parse_route(*found)
        except (HubUnavailable, KeyError, TypeError, ValueError):
            return None
        self.table.set(route)
        return route

    async def recheck(self, stale: Route) -> Route | None:
        """STALE's target refused the connection: is the table behind the hub?

        The table can lag the hub by up to one sync interval, and a server that
        stopped and started again inside it listens on a new port while the
        table still has the old one. So ask the hub for STALE's prefix now,
        bypassing the table and the negative cache, and put the answer in the
        table: the hub's current route (maybe STALE itself: the server is down
        and the hub does not know yet), or None when the hub has no server
        there (the route is dropped). Hub unreachable: STALE, as the table says.
        Concurrent rechecks of one prefix share one call, and an answer is
        reused for `negative_ttl`, so a dead server costs the hub little."""
        prefix = stale.prefix
        now = self.clock()
        remembered = self._rechecked.get(prefix)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        pending = self._rechecks.get(prefix)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Route | None] = asyncio.get_running_loop().create_future()
        self._rechecks[prefix] = future
        route: Route | None = stale
        try:
            route = await self._current(stale)
        finally:
            del self._rechecks[prefix]
            future.set_result(route)  # waiters never hang, even on cancellation
        if len(self._rechecked) > 10_000:
            self._rechecked = {p: r for p, r in self._rechecked.items() if r[0] > now}
        self._rechecked[prefix] = (now + self.policy.negative_ttl, route)
        return route

    async def _current(self, stale: Route) -> Route | None:
        try:
            found = await asyncio.to_thread(self.client.lookup, stale.prefix)
            route = parse_route(*found) if found is not None else None
        except (HubUnavailable, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot recheck the route of %s: %s", stale.prefix, exc)
            return stale
        if route is None or route.prefix != stale.prefix:
            self.table.remove(stale.prefix)
        if route is not None:
            self.table.set(route)
        return route

    def forget_miss(self, user: str) -> None:
        """Drop a cached "no route" for USER (the hub says its server runs)."""
        self._negative.pop(user, None)

    def hub_redirected(self, location: str) -> None:
        """The hub sends the browser to /user/<name>/...: it believes that server
        runs (it may be ready before our next sync, e.g. the hub's bounce after a
        miss). Forget a cached "no route" for that user, so the redirected request
        looks the route up instead of landing on the hub's page again."""
        where = classify(urlsplit(location).path or "/")
        if where.kind == PathKind.USER:
            self.forget_miss(where.user)

    def _remember_miss(self, user: str, now: float) -> None:
        if len(self._negative) > 10_000:
            self._negative = {u: t for u, t in self._negative.items() if t > now}
        self._negative[user] = now + self.policy.negative_ttl

    # --- activity -------------------------------------------------------------------

    def touch(self, prefix: str) -> None:
        """Hot path: remember that PREFIX saw traffic now (wall clock)."""
        self.activity[prefix] = time.time()

    async def report_activity_once(self) -> None:
        if not self.activity:
            return
        batch, self.activity = self.activity, {}
        payload = {p: _iso(t) for p, t in batch.items()}
        try:
            await asyncio.to_thread(self.client.report_activity, payload)
        except HubUnavailable:
            for prefix, when in batch.items():  # keep the newest for the next try
                if self.activity.get(prefix, 0.0) < when:
                    self.activity[prefix] = when

    async def report_activity_forever(self) -> None:
        while True:
            await asyncio.sleep(self.policy.activity_every)
            await self.report_activity_once()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
