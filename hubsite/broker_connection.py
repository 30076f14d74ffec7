"""The connection the hub and its workers hold to the broker: kombu's, made
safe to close twice after the broker went away.

When Redis dies under a worker, Celery's consumer first `collect()`s the
broken connection and then `close()`s it. kombu's collect closes the default
channel (the one tasks are consumed on) and the others, then lets the transport
go. If the default channel was waiting in a BRPOP, closing it reads that reply
first, fails (Redis is gone) and leaves the channel open; closing the others
stops at the first error too. The channel keeps pointing at the transport that
collect let go, and kombu keeps it as the default channel, so close() closes it
again: with a task taken and not yet acknowledged it then tries to put the task
back through a transport that no longer knows its broker, and raises
AttributeError ('NoneType' object has no attribute 'hostname'). That is not a
connection error, so it escapes Celery's retry loop and the worker stops
consuming for good while its process stays up. It happened about once in ten
runs of the Redis-outage fault test (a spawn's ack racing the outage).

Here a connection forgets its default channel whenever it closes its own
side: whatever happened to that channel, it belonged to a transport that is
being let go, and the next use must open a fresh one. A task it had taken
stays in Redis's unacked set and is delivered again after the visibility
timeout, as kombu would have done had the put-back reached Redis.
"""

from __future__ import annotations

from typing import Any

import kombu
import kombu.connection
from celery.app.amqp import AMQP as CeleryAMQP


class _ForgetsItsDefaultChannel:
    def _do_close_self(self) -> None:
        try:
            super()._do_close_self()  # type: ignore[misc]
        finally:
            self._default_channel = None


class Connection(_ForgetsItsDefaultChannel, kombu.Connection):
    def Pool(self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        return ConnectionPool(self, limit=limit, **kwargs)


class PooledConnection(_ForgetsItsDefaultChannel, kombu.connection.PooledConnection):
    """What the producer pool (publishing tasks) hands out."""


class ConnectionPool(kombu.connection.ConnectionPool):
    def new(self) -> PooledConnection:
        return PooledConnection(self, **dict(self.connection._info(resolve=False)))


class AMQP(CeleryAMQP):
    """Celery's messaging layer with the connection above (`Celery(amqp=...)`)."""

    Connection = Connection
    BrokerConnection = Connection
