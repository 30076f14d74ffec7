"""RouteSync's miss handling against the fake hub over real HTTP: cached "no
route" answers, and the hub's redirect to a user's server clearing them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from routing.router.client import HubClient, RouteSync
from tests.routing.fakes import TOKEN, Clock, HubState, Running, make_hub


@pytest.fixture
def hub() -> Iterator[tuple[HubState, Running]]:
    state = HubState()
    server = Running(make_hub(state))
    yield state, server
    server.stop()


@pytest.fixture
def sync(hub) -> tuple[RouteSync, HubState, Clock]:
    state, server = hub
    clock = Clock()
    return RouteSync(HubClient(server.url, TOKEN), clock=clock), state, clock


@pytest.fixture
def router_warnings() -> Iterator[list[str]]:
    """What the router logs at WARNING and above, caught on its own logger:
    caplog goes through the root logger, which other tests in this process
    reconfigure (Celery's test worker sets up logging of its own), and in CI
    it once saw nothing at all."""
    logger = logging.getLogger("routing.router")
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    saved = (logger.level, logger.disabled)
    logger.setLevel(logging.WARNING)
    logger.disabled = False
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)
    logger.disabled = saved[1]
    logger.setLevel(saved[0])  # setLevel, not the attribute: it also clears the level cache


def resolve(sync: RouteSync, user: str, *, method: str = "GET") -> object:
    return asyncio.run(sync.resolve(user, "", f"/user/{user}/lab", method=method))


def test_a_miss_is_cached_until_its_time_is_up(sync):
    routes, state, clock = sync
    assert resolve(routes, "ghost") is None
    assert resolve(routes, "ghost") is None
    assert len(state.lookups) == 1
    clock.now += routes.policy.negative_ttl + 0.001
    assert resolve(routes, "ghost") is None
    assert len(state.lookups) == 2


def test_the_hubs_redirect_to_a_users_server_clears_its_cached_miss(sync):
    routes, state, _ = sync
    assert resolve(routes, "late") is None
    state.set_route("/user/late/", "http://127.0.0.1:9")
    routes.hub_redirected("/user/late/lab?redirects=1")
    route = resolve(routes, "late")
    assert route is not None and route.prefix == "/user/late/"


def test_other_hub_redirects_keep_the_cached_miss(sync):
    routes, state, _ = sync
    assert resolve(routes, "late") is None
    state.set_route("/user/late/", "http://127.0.0.1:9")
    routes.hub_redirected("/hub/login?next=%2Fuser%2Flate%2Flab")
    routes.hub_redirected("/user/other/")
    assert resolve(routes, "late") is None
    assert len(state.lookups) == 1


def watch_a_wake_file(routes: RouteSync, tmp_path, content: str | None = None) -> None:
    """ROUTES synced once, watching a wake file (as wakefile.watch_forever sets
    it up) that holds CONTENT, by default the version the table is at."""
    routes.wake_file = tmp_path / "routes-changed"
    routes.watching = routes.file_replaced = True
    asyncio.run(routes.sync_once())
    routes.wake_file.write_text(routes.version if content is None else content)
    routes.note_wake_file()


def test_no_lookup_is_made_while_the_wake_file_names_the_tables_version(sync, tmp_path):
    """The hub rewrites the wake file right after each route change commits: a
    table at the version it names has every route, and a miss is a miss."""
    routes, state, clock = sync
    watch_a_wake_file(routes, tmp_path)
    for _ in range(3):
        clock.now += routes.policy.negative_ttl + 0.001
        assert resolve(routes, "ghost") is None
    assert state.lookups == []
    state.set_route("/user/ghost/", "http://127.0.0.1:9")  # announced, not pulled yet
    routes.wake_file.write_text(str(state.version))
    route = resolve(routes, "ghost")
    assert route is not None and route.prefix == "/user/ghost/"
    assert len(state.lookups) == 1


def test_a_route_pulled_between_the_callers_miss_and_the_resolve_is_used(sync, tmp_path):
    """The relay misses, and before its resolve runs the pull lands: the
    route is in the table and the wake file now names the table's version.
    The resolve must find the route there, not conclude "no route" from the
    file (that sent a POST to the hub, which answered 424)."""
    from routing.router.table import parse_route

    routes, state, _ = sync
    watch_a_wake_file(routes, tmp_path)
    assert routes.table.lookup("late", "") is None  # the caller's miss
    routes.table.set(parse_route("/user/late/", {"target": "http://127.0.0.1:9", "user": "late"}))
    route = resolve(routes, "late", method="POST")
    assert route is not None and route.prefix == "/user/late/"
    assert resolve(routes, "late") is route
    assert state.lookups == []


def test_a_post_is_looked_up_whatever_the_wake_file_says_and_finds_the_table_out(
    sync, tmp_path, router_warnings
):
    """The hub would answer a POST that reached it with JupyterHub's 424,
    which no client retries: a trusted table does not spare it the lookup.
    Here the table lacks a route at the version the file names (its
    announcement lost), so the lookup also makes the next pull a full one."""
    routes, state, _ = sync
    watch_a_wake_file(routes, tmp_path)
    state.set_route("/user/late/", "http://127.0.0.1:9")  # the file still names the old version
    assert resolve(routes, "ghost") is None and state.lookups == []  # a GET: skipped
    route = resolve(routes, "late", method="POST")
    assert route is not None and route.prefix == "/user/late/"
    assert len(state.lookups) == 1
    assert any("lacked /user/late/, which the hub has" in m for m in router_warnings)
    assert not routes.announced_all()
    asyncio.run(routes.sync_once())  # the full read the warning promised
    assert routes.version == str(state.version)
    assert routes.table.lookup("late", "") is not None


def test_a_user_the_hub_sent_to_its_server_is_looked_up_on_a_miss(sync, tmp_path):
    """The hub bounced a GET to /user/late/...: it believes that server runs,
    so the table is behind for that user, whatever the file says (otherwise
    the browser would go round hub and router until it gave up)."""
    routes, state, clock = sync
    watch_a_wake_file(routes, tmp_path)
    state.set_route("/user/late/", "http://127.0.0.1:9")
    assert resolve(routes, "late") is None and state.lookups == []
    routes.hub_redirected("/user/late/lab")
    route = resolve(routes, "late")
    assert route is not None and route.prefix == "/user/late/"
    clock.now += routes.policy.after_redirect + 0.001
    routes.table.remove("/user/late/")
    routes.note_wake_file()  # trusted again: the file still names the table's version
    assert resolve(routes, "late") is None and len(state.lookups) == 1


def test_a_wake_file_not_kept_by_this_hub_leaves_misses_looked_up(sync, tmp_path):
    routes, state, _ = sync
    watch_a_wake_file(routes, tmp_path, "999999")  # another database's hub, or none
    assert resolve(routes, "ghost") is None
    assert len(state.lookups) == 1


def test_misses_are_looked_up_while_a_change_is_pending_and_trust_is_kept(sync, tmp_path):
    from routing.router import wakefile

    routes, state, _ = sync
    watch_a_wake_file(routes, tmp_path)
    assert routes.woken
    wakefile.announce_pending(routes.wake_file, state.version + 1)  # clients may see it already
    state.set_route("/user/late/", "http://127.0.0.1:9")
    route = resolve(routes, "late")
    assert route is not None and route.prefix == "/user/late/"
    routes.note_wake_file()
    assert routes.woken  # a pending change is no reason to start polling every second


def test_a_wake_channel_that_misses_a_change_is_no_longer_relied_on(sync):
    """A router on another Redis database than its hub's subscribes to a
    channel nobody publishes on: the first change found without a message
    puts it back on one-second polls; a message naming its version, back on
    the channel."""
    routes, state, _ = sync
    routes.subscribed = True
    asyncio.run(routes.sync_once())
    assert routes.woken  # subscribed, and nothing found unannounced yet
    state.set_route("/user/late/", "http://127.0.0.1:9")
    asyncio.run(routes.sync_once())  # a poll finds it: no message named it
    assert not routes.woken  # and a warning says so (routing.router)
    routes.hear(str(state.version))
    asyncio.run(routes.sync_once())
    assert routes.woken


def test_a_change_announced_on_the_wake_channel_keeps_it_relied_on(sync):
    routes, state, _ = sync
    routes.subscribed = True
    asyncio.run(routes.sync_once())
    state.set_route("/user/late/", "http://127.0.0.1:9")
    routes.hear(str(state.version))
    asyncio.run(routes.sync_once())
    assert routes.woken and routes.table.lookup("late", "") is not None
