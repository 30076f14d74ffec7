"""Everything the router says to the hub: the route table (full with ETag,
incremental with `since`, one-path lookups) and batched activity reports.

`HubClient` is the only place with network I/O to the hub (blocking, run in
threads). `RouteSync` keeps a RouteTable in step with it from the event loop:
the full table at start and every `full_every` seconds, the changes after its
version (the hub's commit-ordered change feed) every `interval` seconds, or at
once when the hub's wake channel says so (routing/router/wakeup.py, then only
every `woken_interval`), and a lookup when a /user/... request misses. If the
hub cannot be reached the last table keeps serving and `stale` says so; a
route is only ever what the hub said. The table it synced is saved to a
Snapshot, which a worker started while the hub is down begins from."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from routing.router.hubs import HubPool, split_urls
from routing.router.snapshot import Snapshot
from routing.router.table import (
    PathKind,
    Route,
    RouteTable,
    apply_changes,
    build_routes,
    classify,
    parse_route,
)
from routing.router.wakefile import pending_change, read_version, read_wake

log = logging.getLogger("routing.router")

# the requests whose miss may skip the hub lookup when the wake file is trusted
SAFE_METHODS = frozenset(("GET", "HEAD"))


class HubUnavailable(Exception):
    """The hub did not answer usefully (connection error, timeout, 5xx, bad token)."""


class VersionRefused(Exception):
    """The hub cannot continue from our version (another format, another hub):
    read the full table."""


@dataclass
class FullTable:
    version: str
    routes: dict[str, dict[str, Any]]
    full: bool = True


class HubClient:
    """Blocking calls to /hub/api/routes*; one kept-alive connection per thread.

    HUB_URL may name several hubs (`http://a:8081,http://b:8081`, one database
    behind them): a call that cannot connect to one is made to the next
    (routing.router.hubs), which every later call then starts from.

    Plain http.client, not requests: a route pull is a few hundred bytes of
    JSON, and requests' layers cost the router three times what the socket
    work does (py-spy, bench/k8s_spawn.py). No proxies, no .netrc, no
    redirects: the hub is ours to reach directly."""

    def __init__(self, hub_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.hubs = HubPool([url + "/hub/api/routes" for url in split_urls(hub_url)])
        self.timeout = timeout
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        self._local = threading.local()

    @property
    def api(self) -> str:
        """The routes API of the hub calls go to now."""
        return self.hubs.current()

    def _call(
        self,
        method: str,
        path: str = "",
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: object = None,
    ) -> Answer:
        api = self.hubs.current()
        target = path + (f"?{urlencode(params)}" if params else "")
        while True:
            try:
                response = self._request(method, api + target, headers, json_body)
                break
            except HubUnreached as exc:
                nxt = self.hubs.refused(api)
                if nxt is None:
                    raise HubUnavailable(f"{method} {api + target}: {exc}") from None
                log.warning("hub at %s refused (%s); trying %s", api, exc, nxt)
                api = nxt
            except OSError as exc:  # a slow answer: that hub is up, another would be as slow
                raise HubUnavailable(f"{method} {api + target}: {exc}") from None
        self.hubs.answered(api)
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise HubUnavailable(f"{method} {api + target}: HTTP {response.status_code}")
        return response

    def _request(
        self, method: str, url: str, headers: dict[str, str] | None, json_body: object
    ) -> Answer:
        parts = urlsplit(url)
        body = None
        sent = dict(self._headers, **(headers or {}))
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn, reused = self._connection(parts.scheme, parts.netloc)
        try:
            return _exchange(conn, method, target, body, sent)
        except _Dropped as exc:
            # a kept-alive connection the hub closed as we reused it: a GET is
            # tried once more on a new one (not after a timeout: the hub is slow)
            self._forget(parts.scheme, parts.netloc)
            if not reused or method != "GET":
                raise HubUnreached(str(exc)) from None
        conn, _ = self._connection(parts.scheme, parts.netloc)
        try:
            return _exchange(conn, method, target, body, sent)
        except _Dropped as exc:
            self._forget(parts.scheme, parts.netloc)
            raise HubUnreached(str(exc)) from None

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        """(this thread's connection to NETLOC, whether it was used before);
        HubUnreached when a new one cannot be made."""
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "connections", {}
        )
        conn = pool.get((scheme, netloc))
        if conn is not None and conn.sock is not None:
            return conn, True
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=self.timeout)
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
        try:
            conn.connect()
        except OSError as exc:  # refused, unreachable, or a connect timeout
            conn.close()
            raise HubUnreached(exc.strerror or str(exc) or type(exc).__name__) from None
        pool[(scheme, netloc)] = conn
        return conn, False

    def _forget(self, scheme: str, netloc: str) -> None:
        conn = self._local.__dict__.get("connections", {}).pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def full(self, etag: str | None = None) -> FullTable | None:
        """The whole table; None when it still matches ETAG (304)."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        response = self._call("GET", headers=headers)
        if response.status_code == 304:
            return None
        body = self._json(response)
        return FullTable(version=str(body["version"]), routes=dict(body["routes"]))

    def since(self, version: str) -> FullTable:
        """Routes changed since VERSION (None values = removed), or the full table
        (`full`) when the hub's change feed cannot continue from VERSION."""
        response = self._call("GET", params={"since": version})
        if response.status_code == 400:
            raise VersionRefused(f"the hub refused version {version!r}")
        body = self._json(response)
        return FullTable(
            version=str(body["version"]), routes=dict(body["routes"]), full=bool(body["full"])
        )

    def lookup(self, path: str) -> tuple[str, dict[str, Any]] | None:
        response = self._call("GET", "/lookup", params={"path": path})
        if response.status_code == 404:
            return None
        body = self._json(response)
        return str(body["prefix"]), dict(body["route"])

    def report_activity(self, activity: dict[str, str]) -> None:
        response = self._call("POST", "/activity", json_body=activity)
        if response.status_code >= 400:
            log.warning("hub refused activity report: HTTP %s", response.status_code)

    @staticmethod
    def _json(response: Answer) -> dict[str, Any]:
        if response.status_code != 200:
            raise HubUnavailable(f"unexpected HTTP {response.status_code} from the hub")
        try:
            body = json.loads(response.body)
        except ValueError:
            raise HubUnavailable("the hub answered with invalid JSON") from None
        if not isinstance(body, dict):
            raise HubUnavailable("the hub answered JSON that is not an object")
        return body


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes


class HubUnreached(OSError):
    """The call never got an answer started: refused, reset, or a connect
    timeout. The next hub of the pool is tried (a reset may come after a POST
    reached the hub: an activity report sent twice only repeats the same
    timestamps)."""


class _Dropped(OSError):
    """The connection closed or reset before an answer began."""


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
) -> Answer:
    """One request and its whole answer on CONN; _Dropped when the connection
    went away before the answer began, OSError (a timeout) when it is slow."""
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
    except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine) as exc:
        conn.close()
        raise _Dropped(str(exc) or type(exc).__name__) from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise OSError(str(exc) or type(exc).__name__) from None
    try:
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise OSError(f"reading the answer: {exc or type(exc).__name__}") from None
    if response.will_close:
        conn.close()
    return Answer(response.status, data)


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
    after_redirect: float = 1.0  # a user the hub sent to its server: misses looked up
    max_lookups: int = 4  # concurrent lookups per process; beyond: treat as a miss
    activity_every: float = 5.0
    stale_backoff: float = 2.0
    # while a wake channel (routing/router/wakeup.py) is subscribed, the hub says
    # when to pull; this slow poll only covers a lost message
    woken_interval: float = 15.0
    snapshot_every: float = 1.0  # at most one snapshot write per second


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
    # users the hub sent to their server (hub_redirected): their misses are
    # looked up until then, whatever the wake file says
    _sent_to_server: dict[str, float] = field(default_factory=dict)
    _inflight: dict[tuple[str, str], asyncio.Future[Route | None]] = field(default_factory=dict)
    _rechecks: dict[str, asyncio.Future[Route | None]] = field(default_factory=dict)
    _rechecked: dict[str, tuple[float, Route | None]] = field(default_factory=dict)
    activity: dict[str, float] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    subscribed: bool = False  # a wake channel (Redis) is listening
    # the newest change id a message on it named: the channel is no longer
    # believed (polls every second again) once a pull finds a version it did
    # not name, until it names the one the table is at
    heard: int = -1
    _channel_current: bool = True
    # the hub's wake file (routing/router/wakefile.py): watched, and keeping up
    wake_file: Path | None = None
    watching: bool = False
    # the file was replaced while watched: a hub writes it, not just an old
    # file left by another hub whose number happens to match ours
    file_replaced: bool = False
    _file_current: bool = False
    _woken: asyncio.Event | None = None
    _changed: int = 0  # table changes from syncs; the snapshot saves the newest
    _saved: int = 0
    _last_save: float = float("-inf")

    # --- table sync -----------------------------------------------------------------

    async def sync_once(self) -> None:
        """One pull: full (at start / periodically / after a failure) or incremental."""
        now = self.clock()
        before = self.version
        if self.version is None or now - self._last_full >= self.policy.full_every:
            etag = self.version if not self.stale else None
            full = await asyncio.to_thread(self.client.full, etag)
            if full is not None:
                self._replace(full)
            self._last_full = now
        else:
            try:
                changes = await asyncio.to_thread(self.client.since, self.version)
            except VersionRefused:
                self._replace(await asyncio.to_thread(self.client.full, None))
                self._last_full = now
            else:
                if changes.full:
                    self._replace(changes)
                    self._last_full = now
                elif changes.routes:
                    self._warn_skipped(apply_changes(self.table, changes.routes))
                    self._changed += 1
                self.version = changes.version
        self.last_ok = self.clock()
        if self.stale:
            log.info("route table in sync with the hub (%d routes)", len(self.table))
        self.stale = False
        self.note_wake_file()
        self.note_channel(before)

    def note_channel(self, before: str | None) -> None:
        """Keep relying on the wake channel while its messages name the
        versions pulls find. A router whose HUB_REDIS_URL is not the hub's
        (another database number: another channel) hears nothing and, trusting
        the channel, polled every 15 s: a removed route stayed up to 15 s. Now
        the first change the channel did not announce makes it poll every
        second, until a message names the version it is at."""
        version = self.version
        if not self.subscribed or version is None or not version.isdigit():
            return
        if self.heard >= int(version):
            current = True
        elif version != before and before is not None:  # found, never announced
            current = False
        else:
            return
        if current != self._channel_current:
            if current:
                log.info("woken through the wake channel again")
            else:
                log.warning(
                    "the wake channel did not announce route change %s: polling every "
                    "second (is this router's HUB_REDIS_URL the hub's?)",
                    version,
                )
        self._channel_current = current

    def hear(self, version: str | None) -> None:
        """A message on the wake channel: the hub has changes up to VERSION."""
        if version is not None and version.isdigit():
            self.heard = max(self.heard, int(version))
        self.wake(version)

    def note_wake_file(self) -> None:
        """Rely on the wake file only once it has been replaced while watched,
        and while it names the version the hub just gave us: otherwise nobody
        writes it for this hub (or a number left by an earlier database, or by
        a hub on another database that happens to match ours, is in it)."""
        if self.wake_file is None:
            return
        text = read_wake(self.wake_file)
        if pending_change(text) is not None:  # a change on its way: its number decides
            return
        current = self.file_replaced and self.version is not None and text == self.version
        if current != self._file_current:
            log.info(
                "%s the wake file %s",
                "woken through" if current else "polling every second: no news in",
                self.wake_file,
            )
        self._file_current = current

    def announced_all(self) -> bool:
        """The wake file, trusted (it has kept up with this hub), names the
        version our table is at: the hub has no change we have not pulled."""
        if self.wake_file is None or not (self.watching and self._file_current):
            return False
        return self.version is not None and read_version(self.wake_file) == self.version

    @property
    def woken(self) -> bool:
        """A wake channel tells us of changes: poll only as a safety net."""
        channel = self.subscribed and self._channel_current
        return channel or (self.watching and self._file_current)

    def _replace(self, full: FullTable | None) -> None:
        if full is None:  # a 304 to a request without an ETag: not expected
            raise HubUnavailable("the hub answered 304 without an ETag")
        routes, skipped = build_routes(full.routes)
        self.table.replace(routes)
        self.version = full.version
        self._changed += 1
        self._warn_skipped(skipped)

    def wake(self, version: str | None = None) -> None:
        """The hub has a change up to VERSION: pull now, unless we have it."""
        if version is not None and _newer_or_same(self.version, version):
            return
        if self._woken is not None:
            self._woken.set()

    async def sync_forever(self) -> None:
        self._woken = woken = asyncio.Event()
        while True:
            woken.clear()  # a wake during the pull below makes the next one start at once
            try:
                await self.sync_once()
                delay = self.policy.woken_interval if self.woken else self.policy.interval
            except (HubUnavailable, KeyError, TypeError, ValueError) as exc:
                if not self.stale:
                    log.warning("route table stale, keeping %d routes: %s", len(self.table), exc)
                self.stale = True
                delay = self.policy.stale_backoff
            await self._wait_saving_snapshots(woken, delay)

    async def _wait_saving_snapshots(self, woken: asyncio.Event, delay: float) -> None:
        """Until woken or DELAY is up, saving the snapshot when one is due: a
        snapshot held back (one write a second at most) is written on time
        without pulling again for it (that was one more pull per worker after
        most route changes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while True:
            await self.save_snapshot()
            left = deadline - loop.time()
            if left <= 0:
                return
            if self.snapshot is not None and self._saved != self._changed:  # one is due
                due = self._last_save + self.policy.snapshot_every - self.clock()
                left = min(left, max(due, 0.01))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), left)
                return

    # --- snapshot -------------------------------------------------------------------

    def restore(self) -> bool:
        """Start from the last table a worker of this router saved (the hub is
        down): served as stale until the hub answers. False when there is none."""
        if self.snapshot is None:
            return False
        saved = self.snapshot.load()
        if saved is None:
            return False
        version, routes = saved
        good, skipped = build_routes(routes)
        self.table.replace(good)
        self.version = version
        self._warn_skipped(skipped)
        self.stale = True
        log.info("serving %d routes from the snapshot %s", len(self.table), self.snapshot.path)
        return True

    async def save_snapshot(self) -> None:
        """Write the table when a sync changed it, at most every `snapshot_every`."""
        if self.snapshot is None or self._saved == self._changed or self.version is None:
            return
        now = self.clock()
        if now - self._last_save < self.policy.snapshot_every:
            return
        self._last_save = now
        changed = self._changed
        try:
            await asyncio.to_thread(self.snapshot.save, self.version, self.table.routes())
        except OSError as exc:
            log.warning("cannot write the route snapshot %s: %s", self.snapshot.path, exc)
            return
        self._saved = changed

    @staticmethod
    def _warn_skipped(skipped: list[str]) -> None:
        if skipped:
            log.warning("ignored unusable routes from the hub: %s", ", ".join(skipped[:10]))

    # --- misses ---------------------------------------------------------------------

    async def resolve(
        self, user: str, segment: str, path: str, *, method: str = "GET"
    ) -> Route | None:
        """Ask the hub about a path the table does not know. Negative answers are
        cached per user for `negative_ttl`, identical lookups share one call, and at
        most `max_lookups` run at once, so a flood of unknown names costs the hub
        little. Hub unreachable = no route (the request goes to the hub's page).

        No call at all while the wake file names the very version the table
        has: the hub marks the file pending before a route change commits and
        writes its number right after, so the table holds every route the hub
        could name. That was a
        lookup per poll of a server still starting (bench/spawn.py), half the
        requests such a poll cost the hub.

        The table is read again first: the caller's miss and this call are
        two turns of the event loop, and the pull that brings the route (and
        makes the wake file trusted) can land between them. CI saw it: a
        POST sent right after a start missed, the pull landed in the same
        millisecond, and this found the file naming the table's version and
        sent the POST to the hub, whose answer to it is JupyterHub's 424.

        Skipping the lookup applies only to SAFE_METHODS (GET and HEAD, which
        is what polls send), and not to a user the hub has just sent to its
        server. For those, a table that somehow lacks a route costs one lookup.
        That lookup also catches the fault (_found_missing). The alternative is a
        request that no client retries, or a redirect loop."""
        found = self.table.lookup(user, segment)
        if found is not None:  # pulled since the caller's miss (the docstring says how)
            return found
        now = self.clock()
        if self._negative.get(user, 0.0) > now:
            log.debug(
                "%s: no route (the hub said so less than %gs ago)", path, self.policy.negative_ttl
            )
            return None
        trusted = self.announced_all()
        if trusted and method in SAFE_METHODS and self._sent_to_server.get(user, 0.0) <= now:
            # rare and telling: the table is trusted to be complete, so a user
            # whose server has just started must already be in it
            log.info(
                "%s: no route, and the wake file says the table has every change (%s)",
                path,
                self.version,
            )
            return None
        key = (user, segment)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if len(self._inflight) >= self.policy.max_lookups:
            log.info(
                "%s: no route looked up (%d lookups already running)", path, len(self._inflight)
            )
            return None
        future: asyncio.Future[Route | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        route: Route | None = None
        try:
            route = await self._lookup(path)
            if route is None:
                log.debug("%s: no route at the hub", path)
                self._remember_miss(user, now)
            elif trusted and self.announced_all():
                self._found_missing(route)
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
        except (HubUnavailable, KeyError, TypeError, ValueError) as exc:
            log.info("cannot look up %s: %s", path, exc)  # it goes to the hub's page
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
            now = self.clock()
            _remember(self._sent_to_server, where.user, now + self.policy.after_redirect, now)

    def _found_missing(self, route: Route) -> None:
        """The hub has ROUTE, and the table lacked it at the version the wake
        file names, before and after the lookup: the table is not what that
        version says. Read the whole table now rather than trust it."""
        log.warning(
            "the route table at version %s lacked %s, which the hub has: reading the full table",
            self.version,
            route.prefix,
        )
        self._file_current = False
        self._last_full = float("-inf")
        self.wake()

    def _remember_miss(self, user: str, now: float) -> None:
        _remember(self._negative, user, now + self.policy.negative_ttl, now)

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


def _remember(until: dict[str, float], user: str, deadline: float, now: float) -> None:
    """USER's entry in UNTIL (user -> deadline); past deadlines are dropped
    once the map holds 10,000, so a flood of names cannot grow it for ever."""
    if len(until) > 10_000:
        for name in [u for u, t in until.items() if t <= now]:
            del until[name]
    until[user] = deadline


def _newer_or_same(ours: str | None, theirs: str) -> bool:
    return ours is not None and ours.isdigit() and theirs.isdigit() and int(ours) >= int(theirs)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
