"""Routes changing and the router dying while client loops run (bounded in
count and time): no answer ever comes from the wrong backend."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import requests

from tests.live import wait_for
from tests.routing.conftest import launch_router
from tests.routing.fakes import TOKEN

MAX_REQUESTS = 6000  # per loop: the loops end even if a wait below never does


class Loop:
    """GETs PATH in a thread until stopped; records who answered (or the error)."""

    def __init__(self, url: Callable[[], str], path: str) -> None:
        self.url, self.path = url, path
        self.answers: list[tuple[str, str]] = []  # (who, path the answerer saw)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        for _ in range(MAX_REQUESTS):
            if self.stopped.is_set():
                return
            try:
                body = requests.get(self.url() + self.path, timeout=10).json()
                self.answers.append((body["who"], body["path"]))
            except (requests.RequestException, ValueError, KeyError) as exc:
                self.answers.append(("error", type(exc).__name__))
                time.sleep(0.02)

    def who(self) -> list[str]:
        return [w for w, _ in self.answers]

    def last(self, n: int) -> list[str]:
        return self.who()[-n:]

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(30)


def test_route_added_and_removed_while_traffic_flows(hub_state, backend, start_router):
    hub_state.set_route("/user/alice/", backend("alice").url)
    carol = backend("carol")
    router = start_router(workers=2)
    loops = [Loop(lambda: router.url, "/user/carol/lab"), Loop(lambda: router.url, "/user/alice/")]
    carol_loop, alice_loop = loops
    try:
        wait_for(lambda: len(carol_loop.answers) >= 10, timeout=10, what="traffic before")
        hub_state.set_route("/user/carol/", carol.url)
        wait_for(lambda: carol_loop.last(10) == ["carol"] * 10, timeout=10, what="the switch")
        hub_state.set_route("/user/carol/", None)
        wait_for(lambda: carol_loop.last(10) == ["hub"] * 10, timeout=10, what="the removal")
    finally:
        for loop in loops:
            loop.stop()
    answers = carol_loop.answers
    assert set(carol_loop.who()) == {"hub", "carol"}  # never alice, never an error
    assert answers[0] == ("hub", "/hub/user/carol/lab")  # no route yet: the hub's page
    first_carol = carol_loop.who().index("carol")
    assert all(a == ("hub", "/hub/user/carol/lab") for a in answers[:first_carol])
    assert all(a in {("hub", "/hub/user/carol/lab"), ("carol", "/user/carol/lab")} for a in answers)
    assert set(alice_loop.who()) == {"alice"}


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(p) for p in handle.read().split()]
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_router_killed_under_load_comes_back_with_its_table_from_the_hub(
    hub_state, backend, fake_hub
):
    hub_state.set_route("/user/alice/", backend("alice").url)
    hub_state.set_route("/user/bob/", backend("bob").url)
    routers = [launch_router(fake_hub.url, TOKEN, workers=2)]
    port = routers[0].port
    url = f"http://127.0.0.1:{port}"
    workers = _children(routers[0].proc.pid)
    loops = [Loop(lambda: url, "/user/alice/x"), Loop(lambda: url, "/user/bob/x")]
    try:
        wait_for(lambda: len(loops[1].who()) >= 10, timeout=10, what="traffic before the kill")
        routers[0].proc.send_signal(signal.SIGKILL)
        routers[0].proc.wait(10)
        wait_for(lambda: all(map(_gone, workers)), timeout=10, what="orphaned workers to exit")
        hub_state.lookups.clear()
        before = [len(loop.answers) for loop in loops]
        routers.append(
            launch_router(fake_hub.url, TOKEN, workers=2, extra=["--listen", f"127.0.0.1:{port}"])
        )
        wait_for(
            lambda: all(
                loop.who()[n:].count(name) >= 10
                for loop, n, name in zip(loops, before, ("alice", "bob"), strict=True)
            ),
            timeout=15,
            what="both users served again after the restart",
        )
    finally:
        for loop in loops:
            loop.stop()
        for router in routers:
            router.stop()
    assert len(workers) == 2
    # Only the right backend or a refused connection while no router listened:
    # never the other user, never the hub's "not running" page.
    assert set(loops[0].who()) <= {"alice", "error"} and "alice" in loops[0].who()
    assert set(loops[1].who()) <= {"bob", "error"} and "bob" in loops[1].who()
    assert hub_state.lookups == []  # the restarted router had the full table before serving
