"""What the tests count among a transaction's on-commit hooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def enqueues(hooks: Sequence[Callable[[], object]]) -> list[Callable[[], object]]:
    """The hooks that send a task (servers.services.claims): a commit also wakes
    the routers (with Redis) and the progress feeds (servers/eventwake.py)."""
    return [hook for hook in hooks if "_enqueue_on_commit" in hook.__qualname__]
