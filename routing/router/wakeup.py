"""The hub's "routes changed" signal over Redis pub/sub (HUB_REDIS_URL).

After each commit that changes routes the hub publishes the new change id
(servers/routefeed.py). A subscribed worker pulls the changes at once instead
of polling every second, so an idle hub answers one slow safety poll per
worker every `woken_interval`, and a change reaches the table in milliseconds.
The data itself still comes from the route API; a lost message only delays a
change to the next poll, and without Redis the worker polls as before. The
worker polls slowly only while the channel keeps up: once its messages have
named the version a pull found (RouteSync.note_channel), so a router on
another Redis database than its hub's keeps polling every second."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

from routing.router.client import RouteSync

log = logging.getLogger("routing.router")


def channel(redis_url: str) -> str:
    """Pub/sub channels are shared by every database of a Redis server: the name
    carries HUB_REDIS_URL's database, so two hubs on one Redis do not wake each
    other's routers."""
    db = urlsplit(redis_url).path.strip("/") or "0"
    return f"hub:routes:{db}"


def connection_url(redis_url: str) -> str:
    """HUB_REDIS_URL without its database: pub/sub needs none (no SELECT)."""
    return urlunsplit(urlsplit(redis_url)._replace(path=""))


async def listen_forever(redis_url: str, sync: RouteSync, *, retry: float = 2.0) -> None:
    import redis.asyncio as redis

    name = channel(redis_url)
    while True:
        client = redis.Redis.from_url(connection_url(redis_url), socket_connect_timeout=2)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(name)
                sync.subscribed = True
                sync.wake()  # changes while we were not listening
                log.info("woken by the hub through %s", name)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        sync.hear(_text(message.get("data")))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis raises several unrelated types
            if sync.subscribed:
                log.warning("route wake channel lost, polling every second: %s", exc)
        finally:
            sync.subscribed = False
            await client.aclose()
        await asyncio.sleep(retry)


def _text(data: object) -> str | None:
    if isinstance(data, bytes):
        return data.decode("ascii", "replace")
    return data if isinstance(data, str) else None
