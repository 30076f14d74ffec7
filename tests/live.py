"""Fixtures that run the platform for real: the hub (pytest-django's live
server), a Celery worker on the configured broker, the router daemon and
single-user Jupyter servers. Nothing here is mocked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import User
from servers import services
from servers.models import Server
from servers.spawners import get_spawner

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str) -> object:
    """Poll PREDICATE until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class LiveHub:
    url: str  # http://127.0.0.1:PORT

    @property
    def api(self) -> str:
        return self.url + "/hub/api"


@pytest.fixture
def live_hub(live_server, settings) -> LiveHub:
    """The hub on a real port, with spawned servers told to call it back there."""
    url = live_server.url.replace("localhost", "127.0.0.1")
    settings.HUB_API_URL = url + "/hub/api"
    settings.HUB_PUBLIC_URL = url
    settings.HUB_START_TIMEOUT = 90
    settings.HUB_STOP_GRACE = 5
    return LiveHub(url=url)


@pytest.fixture
def celery_live_worker(live_hub) -> Iterator[object]:
    """A real Celery worker (threads pool) consuming the configured broker."""
    from celery.contrib.testing.worker import start_worker

    from hubsite.celery import app

    with start_worker(
        app, pool="threads", concurrency=8, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


@dataclass
class Router:
    url: str
    port: int
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)  # stderr up to the "listening" line
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=200))  # and after it
    reader: threading.Thread | None = None

    def stop(self) -> None:
        """Stop it and print its log, which pytest shows when the test failed."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=2)  # its last lines
        print(f"the router's log ({self.url}):", "".join(self.lines) + "".join(self.tail), sep="\n")


def launch_router(
    hub_url: str,
    token: str,
    *,
    workers: int = 1,
    extra: list[str] = (),
    hub_wakes: bool = False,
) -> Router:
    """Start `python -m routing.router` and wait for its "listening" line.

    HUB_WAKES: the hub at HUB_URL announces its route changes on this
    session's wake channels (Redis when HUB_REDIS_URL is set, the wake file),
    as the live hub does. Otherwise (a fake hub) the router is given none: a
    router listening to a channel nobody writes to trusts it and polls only
    every 15 s, so a test would see a route change only by chance."""
    env = {**os.environ, "HUB_ROUTER_TOKEN": token}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "routing.router", "--listen", "127.0.0.1:0"]
    command += ["--hub-url", hub_url, "--workers", str(workers)]
    if not hub_wakes:
        env.pop("HUB_REDIS_URL", None)
        command += ["--wake-file", ""]
    command += list(extra)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("router listening on "):
            url = line.split()[-1]
            break
    else:
        proc.wait(10)
        raise AssertionError("router did not start:\n" + "".join(seen))
    router = Router(url=url, port=int(url.rsplit(":", 1)[1]), proc=proc, lines=seen)
    # keep draining stderr so the router never blocks on a full pipe; the last
    # lines are printed at teardown, which pytest shows when the test failed
    router.reader = threading.Thread(target=lambda: router.tail.extend(proc.stderr), daemon=True)
    router.reader.start()
    return router


@pytest.fixture
def router(live_hub) -> Iterator[Router]:
    proc = launch_router(live_hub.url, settings.HUB_ROUTER_TOKEN, hub_wakes=True)
    yield proc
    proc.stop()


@pytest.fixture
def start_server(live_hub, celery_live_worker) -> Iterator[Callable[..., Server]]:
    """Start USER's server through the real request path and wait until running.
    Every server still running at the end is stopped (its process killed)."""

    def start(user: User, name: str = "", **options: str) -> Server:
        server = services.get_or_create_server(user, name)
        services.request_start(server, by=user.username, user_options=options)
        wait_for(
            lambda: (
                Server.objects.get(pk=server.pk).state
                in (Server.State.RUNNING, Server.State.FAILED)
            ),
            timeout=90,
            what=f"{user.username}'s server to start",
        )
        server.refresh_from_db()
        assert server.state == Server.State.RUNNING, server.failure
        return server

    yield start
    spawner = get_spawner()
    for server in Server.objects.exclude(spawner_state={}):
        spawner.stop(server.spawner_state, grace=3)


def stop_and_wait(server: Server, *, by: str = "test") -> None:
    services.request_stop(server, by=by)
    wait_for(
        lambda: Server.objects.get(pk=server.pk).state == Server.State.STOPPED,
        timeout=30,
        what=f"{server} to stop",
    )
    server.refresh_from_db()
