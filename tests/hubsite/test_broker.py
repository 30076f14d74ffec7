"""The embedded filesystem broker under concurrent publishers (hubsite/broker.py)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from kombu import Connection

TRANSPORT = "hubsite.broker:Transport"
PUBLISHERS = 4
PER_PUBLISHER = 300


def _options(folder: Path) -> dict[str, object]:
    return {"data_folder_in": str(folder), "data_folder_out": str(folder), "polling_interval": 0}


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
