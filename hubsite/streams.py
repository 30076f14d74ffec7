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

import logging
import os

DEFAULT_URL = "http://127.0.0.1:8082"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")
    import uvicorn

    from hubsite.env import bind_address, env_str

    url = env_str("HUB_STREAM_URL", DEFAULT_URL).rstrip("/")
    host, _, port = bind_address(url, "HUB_STREAM_URL").rpartition(":")
    level = env_str("HUB_LOG_LEVEL", "INFO").lower()
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "hubsite.asgi:application",
        host=host.strip("[]"),
        port=int(port),
        loop="uvloop",
        lifespan="off",
        proxy_headers=False,  # as under gunicorn: REMOTE_ADDR is the router's
        log_level=level,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
