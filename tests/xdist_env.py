"""Each pytest-xdist worker gets a data dir and a Redis database of its own.

`make test` runs the suite on two workers (`-n 2`): most of its time is spent
waiting for real processes (servers starting, a minute-long outage), which
another worker can use. The workers already get test databases of their own
(pytest-django adds `_gw0`, `_gw1`); what the hub keeps elsewhere would be
shared: the data dir (the filesystem broker's queue, the spawner's process
records, zygote sockets, homes) and the Redis database (Celery's queue, the
cache, the route wake channel). A worker's spawns, audits and broker would then
see the other's. So, before Django reads its settings, this plugin (loaded with
`-p tests.xdist_env`, which pytest imports ahead of every conftest) moves each
worker into `HUB_DATA_DIR/<worker>` and Redis database `<n> + <worker index>`,
emptied first: it is only ever the tests'. Without xdist nothing changes.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16  # redis-server's default `databases`


def worker_redis_url(url: str, index: int) -> str:
    """URL with its database number moved up by INDEX (wrapping at 16)."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + index) % REDIS_DATABASES}"))


def _isolate_worker(worker: str) -> None:
    index = int(worker.removeprefix("gw"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.environ.get("HUB_DATA_DIR") or os.path.join(root, "data")  # settings' default
    os.environ["HUB_DATA_DIR"] = os.path.join(data, worker)
    url = os.environ.get("HUB_REDIS_URL")
    if url and index:
        import redis

        os.environ["HUB_REDIS_URL"] = worker_redis_url(url, index)
        redis.Redis.from_url(os.environ["HUB_REDIS_URL"]).flushdb()


if os.environ.get("PYTEST_XDIST_WORKER"):
    _isolate_worker(os.environ["PYTEST_XDIST_WORKER"])
