"""Fixtures for router tests against the fake hub: real router subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import Router, launch_router
from tests.routing.fakes import TOKEN, EchoWebSocket, HubState, Running, make_backend, make_hub

ROOT = Path(__file__).resolve().parents[2]


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
