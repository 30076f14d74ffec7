"""Emptying the sign-in rate-limit counters between tests."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache


def clear_sign_in_limits() -> None:
    """Only allauth's counters: in CI the Redis database is also Celery's broker,
    whose keys a FLUSHDB would take with it."""
    if not settings.HUB_REDIS_URL:
        cache.clear()
        return
    import redis

    client = redis.Redis.from_url(settings.HUB_REDIS_URL)
    keys = list(client.scan_iter(match=cache.make_key("allauth:rl:*"), count=1000))
    if keys:
        client.delete(*keys)
