"""The broker connection after Redis went away (hubsite/broker_connection.py),
against a real redis-server of the test's own that the test kills."""

from __future__ import annotations

import contextlib

import kombu
import pytest
from kombu import Exchange, Queue

from hubsite.broker_connection import Connection
from hubsite.celery import app
from tests.scheduler.processes import own_redis  # noqa: F401


def _worker_like_connection(connection_class: type[kombu.Connection], url: str):
    """A connection in the state Celery's consumer leaves it in while it waits:
    a task taken and not yet acknowledged on the default channel, which has
    its next BRPOP in flight, and a second channel on a fanout queue (the
    worker's control channel), whose client has been used."""
    conn = connection_class(url)
    tasks = Queue("celery")
    with conn.Producer() as producer:
        producer.publish({"task": "spawn"}, routing_key="celery", declare=[tasks])
    taken: list[kombu.Message] = []
    conn.Consumer([tasks], callbacks=[lambda _, m: taken.append(m)], accept=["json"]).consume()
    conn.drain_events(timeout=5)
    assert len(taken) == 1 and not taken[0].acknowledged
    control = conn.channel()
    pidbox = Queue("w.pidbox", Exchange("celery.pidbox", type="fanout"), auto_delete=True)
    conn.Consumer(pidbox, channel=control, callbacks=[lambda *_: None], accept=["json"]).consume()
    assert control.client is not None
    # what the poller does before it blocks (kombu has no public call for it)
    conn.default_channel._brpop_start()
    return conn


def _what_the_consumer_does_after_the_connection_broke(conn: kombu.Connection) -> None:
    """celery.worker.consumer.Consumer.on_connection_error_after_connected."""
    with contextlib.suppress(Exception):
        conn.collect(socket_timeout=5)
    conn.close()


def test_kombus_own_connection_raises_a_non_connection_error_here(own_redis):  # noqa: F811
    """The fault itself, so that the test below is known to test something: with
    kombu's connection the second close raises AttributeError, which Celery's
    retry loop does not catch, and the worker stops consuming."""
    conn = _worker_like_connection(kombu.Connection, own_redis.url)
    own_redis.stop()
    with pytest.raises(AttributeError):
        _what_the_consumer_does_after_the_connection_broke(conn)
    # the broken channel still holds the unacknowledged task, which kombu would
    # try to put back into the long-gone Redis at interpreter exit (a traceback
    # after the test report): put it back now
    own_redis.start()
    conn.default_channel.qos.restore_unacked_once()


def test_a_connection_closes_cleanly_after_redis_died_under_a_waiting_worker(
    own_redis,  # noqa: F811
):
    conn = _worker_like_connection(Connection, own_redis.url)
    holding = conn.default_channel  # the channel with the task not yet acknowledged
    own_redis.stop()
    _what_the_consumer_does_after_the_connection_broke(conn)
    own_redis.start()
    holding.qos.restore_unacked_once()  # not left for interpreter exit, Redis gone by then
    # and the same connection object works again once Redis is back
    with conn.Producer() as producer:
        producer.publish({"task": "stop"}, routing_key="celery", declare=[Queue("celery")])
    conn.close()


def test_the_hub_and_its_workers_use_that_connection():
    assert isinstance(app.connection_for_write(), Connection)
    assert isinstance(app.connection_for_read(), Connection)
    from hubsite.broker_connection import PooledConnection

    assert isinstance(app.pool.acquire(block=False), PooledConnection)
