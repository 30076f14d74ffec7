"""Fixtures for router tests against the fake hub: real router subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.routing.fakes import TOKEN, EchoWebSocket, HubState, Running, make_backend, make_hub

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Router:
    url: str
    port: int
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)  # stderr up to the "listening" line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launch_router(hub_url: str, token: str, *, workers: int = 1, extra: list[str] = ()) -> Router:
    """Start `python -m routing.router` and wait for its "listening" line."""
    env = {**os.environ, "HUB_ROUTER_TOKEN": token}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "routing.router", "--listen", "127.0.0.1:0"]
    command += ["--hub-url", hub_url, "--workers", str(workers), *extra]
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
    # keep draining stderr so the router never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return Router(url=url, port=int(url.rsplit(":", 1)[1]), proc=proc, lines=seen)


@pytest.fixture
def hub_state() -> HubState:
    return HubState()


@pytest.fixture
def fake_hub(hub_state: HubState) -> Iterator[Running]:
    server = Running(make_hub(hub_state))
    yield server
    server.stop()


@pytest.fixture
def backend() -> Iterator[Callable[[str], Running]]:
    started: list[Running] = []

    def start(name: str) -> Running:
        server = Running(make_backend(name))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def echo_backend() -> Iterator[EchoWebSocket]:
    server = EchoWebSocket()
    yield server
    server.stop()


@pytest.fixture
def start_router(fake_hub: Running) -> Iterator[Callable[..., Router]]:
    routers: list[Router] = []

    def start(workers: int = 1, extra: list[str] = ()) -> Router:
        router = launch_router(fake_hub.url, TOKEN, workers=workers, extra=list(extra))
        routers.append(router)
        return router

    yield start
    for router in routers:
        router.stop()
