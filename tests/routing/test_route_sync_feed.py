"""RouteSync following the real hub's change feed over HTTP (live server):
quiet polls, changes, versions the hub cannot continue from, the Redis wake
channel, and the snapshot a worker restarted while the hub is down starts from."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from routing.router import wakefile, wakeup
from routing.router.client import HubClient, RouteSync, SyncPolicy
from routing.router.snapshot import Snapshot
from servers import routefeed
from servers.models import Server
from servers.services import claims
from tests.factories import ServerFactory


@pytest.fixture
def follower(live_hub, settings) -> RouteSync:
    return RouteSync(HubClient(live_hub.url, settings.HUB_ROUTER_TOKEN))


def pull(sync: RouteSync) -> None:
    asyncio.run(sync.sync_once())


def running(user, name: str = "", port: int = 41234) -> Server:
    return ServerFactory(
        user=user, name=name, state=Server.State.RUNNING, url=f"http://127.0.0.1:{port}"
    )


def test_the_client_follows_the_hubs_changes(follower, alice, bob):
    pull(follower)
    assert len(follower.table) == 0
    server = running(alice)
    pull(follower)
    assert follower.table.lookup("alice", "").target == "http://127.0.0.1:41234"
    running(bob, "lab", 41235)
    claims.request_stop(server, by="alice")
    pull(follower)
    assert follower.table.lookup("alice", "") is None
    assert follower.table.get("/user/bob/lab/").port == 41235
    quiet = follower.version
    pull(follower)
    assert follower.version == quiet


def test_a_version_the_hub_refuses_makes_the_client_read_the_full_table(follower, alice):
    pull(follower)
    follower.version = "1733000000000000-3"  # the old time-window format
    running(alice)
    pull(follower)
    assert follower.table.lookup("alice", "") is not None
    assert follower.version == str(routefeed.last_id())


def test_a_full_answer_to_since_replaces_the_table(follower, alice, bob):
    running(alice)
    pull(follower)
    follower.table.set(follower.table.get("/user/alice/")._replace(prefix="/user/ghost/"))
    follower.version = str(routefeed.last_id() + 50)  # ahead of this hub's feed
    pull(follower)
    assert follower.table.prefixes() == ["/user/alice/"]


def test_the_wake_channel_brings_a_change_without_waiting_for_a_poll(live_hub, settings, alice):
    redis_url = os.environ.get("HUB_REDIS_URL")
    if not redis_url:
        pytest.skip("the wake channel needs Redis (HUB_REDIS_URL)")
    settings.HUB_REDIS_URL = redis_url
    policy = SyncPolicy(interval=3600, woken_interval=3600)  # no poll is due in this test
    sync = RouteSync(HubClient(live_hub.url, settings.HUB_ROUTER_TOKEN), policy=policy)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(sync.sync_forever()),
            loop.create_task(wakeup.listen_forever(redis_url, sync)),
        ]
        while not sync.subscribed or sync.version is None:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(running, alice)
        while sync.table.lookup("alice", "") is None:
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_wake_file_brings_a_change_without_redis_or_a_poll(live_hub, settings, alice, tmp_path):
    """`make run`'s routers and hub on one machine, no Redis: the hub rewrites
    the wake file after each route change and the watching worker pulls."""
    settings.HUB_REDIS_URL = ""
    settings.HUB_ROUTE_WAKE_FILE = str(tmp_path / "run" / "routes-changed")
    policy = SyncPolicy(interval=3600, woken_interval=3600)  # no poll is due in this test
    sync = RouteSync(HubClient(live_hub.url, settings.HUB_ROUTER_TOKEN), policy=policy)
    sync.wake_file = Path(settings.HUB_ROUTE_WAKE_FILE)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(sync.sync_forever()),
            loop.create_task(wakefile.watch_forever(sync.wake_file, sync)),
        ]
        while not sync.watching or sync.version is None:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(running, alice)
        while sync.table.lookup("alice", "") is None:
            await asyncio.sleep(0.01)
        assert sync.woken  # the file named the version pulled: polls are now 15 s apart
        for task in tasks:
            task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert wakefile.read_version(sync.wake_file) == sync.version


@pytest.mark.parametrize(
    "content",
    [None, "0", "999999", "garbage"],
    ids=["missing", "behind", "ahead (an earlier database's)", "garbled"],
)
def test_a_wake_file_that_does_not_keep_up_leaves_the_worker_polling(
    follower, alice, tmp_path, settings, content
):
    """A hub on another machine never writes the file this worker watches."""
    settings.HUB_ROUTE_WAKE_FILE = ""
    running(alice)
    follower.wake_file = tmp_path / "routes-changed"
    if content is not None:
        follower.wake_file.write_text(content)
    follower.watching = True
    follower.file_replaced = True  # as the watch reports when something replaces it
    pull(follower)
    assert not follower.woken
    follower.wake_file.write_text(follower.version)
    pull(follower)
    assert follower.woken


def test_a_wake_file_never_replaced_while_watched_is_not_relied_on(follower, alice, tmp_path):
    """A file left by another hub can name our version by chance (a test's
    fake hub counts 1, 2, 3 too): only a hub that rewrites it is believed."""
    running(alice)
    follower.wake_file = tmp_path / "routes-changed"
    follower.watching = True
    pull(follower)
    follower.wake_file.write_text(follower.version)
    pull(follower)
    assert not follower.woken
    assert not follower.announced_all()


def test_the_wake_file_is_replaced_whole(tmp_path):
    path = tmp_path / "run" / "routes-changed"
    wakefile.announce_pending(path, 7)
    wakefile.announce(path, 7)
    assert wakefile.read_version(path) == "7"
    wakefile.announce_pending(path, 5)  # e.g. a new database's feed, behind an old file
    wakefile.announce(path, 5)
    assert wakefile.read_version(path) == "5"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".routes-changed.lock",
        "routes-changed",
    ]


def test_a_late_announcement_never_replaces_a_later_pending_change(tmp_path):
    """Two writers: change 2 is marked pending (it took the feed's lock once 1
    had committed) before 1's writer gets to name 1. The file must not then
    say 1, or a worker at 1 would take itself to have every route while 2 is
    committed; it goes from "pending 2" straight to 2."""
    path = tmp_path / "routes-changed"
    wakefile.announce_pending(path, 1)
    wakefile.announce_pending(path, 2)
    wakefile.announce(path, 1)
    assert wakefile.read_wake(path) == "pending 2"
    assert wakefile.read_version(path) is None
    assert wakefile.committed(wakefile.read_wake(path)) == "1"  # a worker pulls 1 now
    wakefile.announce(path, 2)
    assert wakefile.read_version(path) == "2"


def test_a_batch_is_marked_by_its_first_change_and_named_by_its_last(tmp_path):
    path = tmp_path / "routes-changed"
    wakefile.announce_pending(path, 4)
    assert wakefile.committed(wakefile.read_wake(path)) == "3"
    wakefile.announce(path, 6, first=4)
    assert wakefile.read_version(path) == "6"


def test_the_snapshot_gives_back_the_table_it_saved(tmp_path, follower, alice, bob):
    running(alice)
    running(bob, "lab", 41235)
    pull(follower)
    snapshot = Snapshot(tmp_path / "router", 8000)
    snapshot.save(follower.version, follower.table.routes())
    restarted = RouteSync(HubClient("http://127.0.0.1:9", "x"), snapshot=snapshot)
    assert restarted.restore()
    assert restarted.stale
    assert restarted.version == follower.version
    assert sorted(restarted.table.prefixes()) == ["/user/alice/", "/user/bob/lab/"]


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        '{"format": 99, "version": "1", "routes": {}}',
        '{"format": 1, "routes": []}',
    ],
)
def test_an_unusable_snapshot_is_not_restored(tmp_path, content):
    snapshot = Snapshot(tmp_path, 8000)
    snapshot.path.write_text(content)
    sync = RouteSync(HubClient("http://127.0.0.1:9", "x"), snapshot=snapshot)
    assert not sync.restore()
    assert len(sync.table) == 0


def test_unusable_routes_in_a_snapshot_are_skipped(tmp_path):
    snapshot = Snapshot(tmp_path, 8000)
    routes = {
        "/user/alice/": {"target": "http://127.0.0.1:41234", "user": "alice", "server_name": ""},
        "/user/bob/": {"target": "ftp://nowhere", "user": "bob", "server_name": ""},
    }
    snapshot.path.write_text(json.dumps({"format": 1, "version": "7", "routes": routes}))
    sync = RouteSync(HubClient("http://127.0.0.1:9", "x"), snapshot=snapshot)
    assert sync.restore()
    assert sync.table.prefixes() == ["/user/alice/"]


def test_sync_forever_writes_the_snapshot_after_a_change(tmp_path, follower, alice):
    follower.snapshot = Snapshot(tmp_path, 8000)
    running(alice)

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(follower.sync_forever())
        while not follower.snapshot.path.exists():
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    version, routes = follower.snapshot.load()
    assert version == follower.version
    assert list(routes) == ["/user/alice/"]


def test_a_snapshot_held_back_is_written_on_time_without_another_pull(tmp_path, follower, alice):
    """At most one snapshot write a second: a change right after the last
    write is saved a moment later, and that moment is no reason to pull."""
    follower.snapshot = Snapshot(tmp_path, 8000)
    follower.policy = SyncPolicy(interval=3600, woken_interval=3600)  # no poll is due
    pulls: list[str] = []
    since = follower.client.since
    follower.client.since = lambda version: pulls.append(version) or since(version)

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(follower.sync_forever())
        while not follower.snapshot.path.exists():  # the first table, written at once
            await asyncio.sleep(0.01)
        await asyncio.to_thread(running, alice)
        follower.wake()
        while "/user/alice/" not in follower.snapshot.load()[1]:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert len(pulls) == 1
