"""Several hubs behind one router: `--hub-url http://a:8081,http://b:8081`.

The hubs share one database, so any of them answers any request alike; the
router sends everything for "the hub" to the first one that takes
connections and moves on when it stops. A hub that refused a connection is
passed over for RETRY_AFTER seconds, then tried first again (it may be back,
restarted by its supervisor). When every hub refuses, the one passed over
longest ago is tried: a request is never refused here for want of a hub.

Only a refused or timed-out *connection* moves traffic: nothing of the
request has reached any hub then, so sending it to the next one cannot do it
twice. A hub that dies mid-answer costs that answer (502), as with one hub.
Values in, values out (the clock is injected); the relay, the mitmproxy
add-on and the route-sync client each keep one pool per kind of upstream."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

RETRY_AFTER = 5.0

T = TypeVar("T")


class HubPool(Generic[T]):
    """Hubs (any value: an address, an Upstream, a URL) in the order given."""

    def __init__(
        self,
        hubs: Sequence[T],
        *,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not hubs:
            raise ValueError("a hub pool needs at least one hub")
        self.hubs = list(hubs)
        self.retry_after = retry_after
        self.clock = clock
        self._down_since: dict[int, float] = {}  # index -> when it last refused

    def __len__(self) -> int:
        return len(self.hubs)

    def __contains__(self, hub: object) -> bool:
        return hub in self.hubs

    def current(self) -> T:
        """The hub to send to now."""
        if not self._down_since:
            return self.hubs[0]
        now = self.clock()
        for index, hub in enumerate(self.hubs):
            since = self._down_since.get(index)
            if since is None or now - since >= self.retry_after:
                return hub
        oldest = min(self._down_since, key=self._down_since.__getitem__)
        return self.hubs[oldest]

    def refused(self, hub: T) -> T | None:
        """HUB refused a connection: the next hub to try for the same request,
        or None when every other one refused within RETRY_AFTER too."""
        now = self.clock()
        index = self.hubs.index(hub)
        self._down_since[index] = now
        for offset in range(1, len(self.hubs)):
            other = (index + offset) % len(self.hubs)
            since = self._down_since.get(other)
            if since is None or now - since >= self.retry_after:
                return self.hubs[other]
        return None

    def answered(self, hub: T) -> None:
        """HUB took a connection: it is up again."""
        if self._down_since:
            self._down_since.pop(self.hubs.index(hub), None)


def split_urls(value: str) -> list[str]:
    """`--hub-url a,b` -> ["a", "b"], each without a trailing slash."""
    return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
