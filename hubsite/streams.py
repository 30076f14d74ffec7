"""The stream server: `python -m hubsite.streams`, the hub's Django project
under uvicorn, where the router sends every spawn-progress stream.

Why a second server: a progress stream lasts as long as a spawn (up to
HUB_START_TIMEOUT), and under gunicorn each one holds one of the hub's 32
threads, so a class of 100 watching their servers start would leave the API
no thread to answer with. Here a stream is a coroutine on one event loop, fed
by one database reader for all of them (servers.api.progress), and the hub's
threads never see it. Anything else sent here is answered too (it is the same
project), just not as cheaply: the router sends only progress paths.

It listens on HUB_STREAM_URL (`http://HOST:PORT`, default
http://127.0.0.1:8082); the router sends progress there when it is given the
same URL. Unset for the router, progress goes to the hub, which serves it on
its threads as before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from types import FrameType

import uvicorn

DEFAULT_URL = "http://127.0.0.1:8082"


class QuietServer(uvicorn.Server):
    """uvicorn's server, woken once a second instead of ten times.

    uvicorn's main loop sleeps 0.1 s at a time only to refresh its Date
    header (once a second) and to notice a shutdown signal; those ten wake-ups
    a second were half of an idle platform's CPU (bench/README.md). Here the
    loop waits a second at a time, or until a signal arrives, so shutdown is
    as prompt as before."""

    _woken: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        counter = 0  # a multiple of 10 makes on_tick refresh the Date header
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=1.0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._woken is not None:
            self._loop.call_soon_threadsafe(self._woken.set)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")
    from hubsite.env import bind_address, env_str

    url = env_str("HUB_STREAM_URL", DEFAULT_URL).rstrip("/")
    host, _, port = bind_address(url, "HUB_STREAM_URL").rpartition(":")
    level = env_str("HUB_LOG_LEVEL", "INFO").lower()
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        "hubsite.asgi:application",
        host=host.strip("[]"),
        port=int(port),
        loop="uvloop",
        lifespan="off",
        proxy_headers=False,  # as under gunicorn: REMOTE_ADDR is the router's
        log_level=level,
        timeout_graceful_shutdown=5,
    )
    server = QuietServer(config)
    server.run()
    if not server.started:  # as uvicorn.run: the port was taken, the app failed to load
        sys.exit(3)


if __name__ == "__main__":
    main()
