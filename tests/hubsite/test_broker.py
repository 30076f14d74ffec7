"""The embedded filesystem broker under concurrent publishers (hubsite/broker.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from hubsite import broker

TRANSPORT = "hubsite.broker:Transport"
PUBLISHERS = 4
PER_PUBLISHER = 300


def _options(folder: Path) -> dict[str, object]:
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "unacked_folder": f"{folder}-unacked",
        "polling_interval": 0,
    }


def _publish(folder: str, publisher: int) -> None:
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(Path(folder))
    ) as conn:
        queue = conn.SimpleQueue("spawns")
        for i in range(PER_PUBLISHER):
            queue.put({"publisher": publisher, "i": i, "pad": "x" * 2000})


def test_consumer_never_reads_a_half_written_message_from_concurrent_publishers(tmp_path):
    # regression: with kombu's own transport the worker died on JSONDecodeError
    # when 10 servers were started at once (bench/spawn.py)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_publish, args=(str(tmp_path), n)) for n in range(PUBLISHERS)]
    for proc in procs:
        proc.start()
    received = set()
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        queue = conn.SimpleQueue("spawns")
        while len(received) < PUBLISHERS * PER_PUBLISHER:
            message = queue.get(timeout=30)  # raises Empty if messages were lost
            received.add((message.payload["publisher"], message.payload["i"]))
            message.ack()
    for proc in procs:
        proc.join()
    assert received == {(p, i) for p in range(PUBLISHERS) for i in range(PER_PUBLISHER)}
    assert not list(tmp_path.glob(".*.part"))


def test_a_filesystem_connection_logs_no_hostname_warning(tmp_path, caplog):
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        conn.SimpleQueue("spawns").put({"x": 1})
        conn.clone().release()
    assert not [r for r in caplog.records if "No hostname" in r.getMessage()]


def test_the_apps_broker_connection_logs_no_hostname_warning(caplog):
    from hubsite.celery import app

    with app.connection_for_write() as conn:
        conn._info()  # where kombu decides about the hostname
        conn.clone().release()
    assert not [r for r in caplog.records if "No hostname" in r.getMessage()]


def _take_and_die(folder: str, ready: Any) -> None:
    """A consumer that takes one message and is killed before acking it."""
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(Path(folder))
    ) as conn:
        message = conn.SimpleQueue("spawns").get(timeout=10)
        ready.put(message.payload)
        time.sleep(60)  # killed here, never acks


def test_a_message_taken_by_a_killed_consumer_is_delivered_again(tmp_path):
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        conn.SimpleQueue("spawns").put({"spawn": 1})
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    taker = ctx.Process(target=_take_and_die, args=(str(tmp_path), ready))
    taker.start()
    assert ready.get(timeout=30) == {"spawn": 1}
    os.kill(taker.pid, signal.SIGKILL)
    taker.join()
    killed = time.monotonic()
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        message = conn.SimpleQueue("spawns").get(timeout=10)
        print(f"\nredelivered {time.monotonic() - killed:.2f}s after the consumer was killed")
        assert message.payload == {"spawn": 1}
        message.ack()
    assert list(Path(f"{tmp_path}-unacked").iterdir()) == []


def test_an_acked_message_is_gone_and_a_rejected_one_comes_back(tmp_path):
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        queue = conn.SimpleQueue("spawns")
        queue.put({"n": 1})
        queue.put({"n": 2})
        first = queue.get(timeout=5)
        first.ack()
        second = queue.get(timeout=5)
        assert second.payload == {"n": 2}
        second.reject(requeue=True)
        again = queue.get(timeout=5)
        assert again.payload == {"n": 2}
        again.ack()
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)


def test_messages_put_in_the_same_instant_are_taken_in_the_order_put(tmp_path):
    # regression: names stamped in milliseconds put such messages in random order
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(tmp_path)
    ) as conn:
        queue = conn.SimpleQueue("spawns")
        for n in range(200):
            queue.put({"n": n})
        taken = []
        for _ in range(200):
            message = queue.get(timeout=5)
            taken.append(message.payload["n"])
            message.ack()
        assert taken == list(range(200))


def test_a_live_consumers_claim_waits_for_the_visibility_timeout(tmp_path):
    options = _options(tmp_path)
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as mine:
        queue = mine.SimpleQueue("spawns")
        queue.put({"n": 1})
        held = queue.get(timeout=5)
        other = Connection("filesystem://", transport=TRANSPORT, transport_options=options)
        with other, pytest.raises(other.SimpleQueue("spawns").Empty):
            other.SimpleQueue("spawns").get(timeout=1.5)
        expired = {**options, "visibility_timeout": 0}
        with Connection("filesystem://", transport=TRANSPORT, transport_options=expired) as other:
            assert other.SimpleQueue("spawns").get(timeout=5).payload == {"n": 1}
        held.ack()


def _publish_later(folder: Path, payload: dict[str, int], delay: float) -> threading.Thread:
    def put() -> None:
        time.sleep(delay)
        with Connection(
            "filesystem://", transport=TRANSPORT, transport_options=_options(folder)
        ) as conn:
            conn.SimpleQueue("spawns").put(payload)

    thread = threading.Thread(target=put)
    thread.start()
    return thread


def test_a_waiting_consumer_takes_a_message_when_it_arrives_not_at_its_next_poll(
    tmp_path, monkeypatch
):
    # kombu's loop sleeps the whole poll interval (here: the get's 20 s) between
    # its look before the message came and the next one
    monkeypatch.setattr(broker, "SCAN_EVERY", 60.0)
    options = {**_options(tmp_path), "polling_interval": 60.0}
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as conn:
        queue = conn.SimpleQueue("spawns")
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.1)  # the consumer is waiting when the message comes
        publisher = _publish_later(tmp_path, {"n": 7}, delay=0.3)
        began = time.monotonic()
        message = queue.get(timeout=20)
        assert message.payload == {"n": 7}
        assert time.monotonic() - began < 10
        message.ack()
        publisher.join()


def test_an_idle_consumer_looks_at_its_folder_about_once_a_second(tmp_path, monkeypatch):
    looks = []
    real_listdir = os.listdir

    def counting_listdir(path):
        if str(path) == str(tmp_path):
            looks.append(time.monotonic())
        return real_listdir(path)

    monkeypatch.setattr(broker.os, "listdir", counting_listdir)
    options = {**_options(tmp_path), "polling_interval": 0.01}
    with Connection("filesystem://", transport=TRANSPORT, transport_options=options) as conn:
        queue = conn.SimpleQueue("spawns")
        with pytest.raises(queue.Empty):
            queue.get(timeout=2.5)
    # kombu's loop would have looked ~250 times at a 10 ms poll interval
    assert 1 <= len(looks) <= 6
