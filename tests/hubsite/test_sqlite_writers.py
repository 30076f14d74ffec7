"""The embedded default's SQLite backend (hubsite/sqlite): the threads of a
process queue for the write lock in Python. These run on SQLite files of
their own, whatever database the suite itself uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import OperationalError, connections

from hubsite.sqlite.base import DatabaseWrapper


@pytest.fixture
def connect(tmp_path: Path, django_db_blocker) -> Iterator:
    """Connections to a file of this test's own, outside the suite's database."""
    with django_db_blocker.unblock():
        yield from _connections(tmp_path)


def _connections(tmp_path: Path) -> Iterator:
    made: list[DatabaseWrapper] = []

    def make(timeout: float = 5.0) -> DatabaseWrapper:
        config = connections.configure_settings(
            {
                "default": {
                    "ENGINE": "hubsite.sqlite",
                    "NAME": str(tmp_path / "hub.sqlite3"),
                    "OPTIONS": {
                        "timeout": timeout,
                        "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL;",
                    },
                }
            }
        )["default"]
        conn = DatabaseWrapper(config, alias=f"t{len(made)}")
        made.append(conn)
        return conn

    first = make()
    with first.cursor() as cursor:
        cursor.execute("CREATE TABLE rows (thread INTEGER, n INTEGER)")
    yield make
    for conn in made:
        if conn._thread_ident == threading.get_ident():  # others closed by their thread
            conn.close()


def begin(conn: DatabaseWrapper) -> None:
    conn.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


def end(conn: DatabaseWrapper, *, commit: bool = True) -> None:
    conn.commit() if commit else conn.rollback()
    conn.set_autocommit(True)


def count(conn: DatabaseWrapper) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM rows")
        return cursor.fetchone()[0]


def test_many_threads_writing_at_once_all_commit_within_the_lock_timeout(connect):
    """32 threads, each 10 transactions holding the lock ~2 ms, with a 2 s
    timeout: about 0.7 s of writing in all. Through SQLite's busy handler
    alone, sleeping waiters kept missing the free lock and some timed out."""
    threads, rounds = 32, 10
    errors: list[Exception] = []
    go = threading.Barrier(threads)

    def write(i: int) -> None:
        conn = connect(timeout=2.0)  # a connection belongs to its thread
        go.wait()
        try:
            for n in range(rounds):
                begin(conn)
                with conn.cursor() as cursor:
                    cursor.execute("INSERT INTO rows VALUES (%s, %s)", [i, n])
                time.sleep(0.002)
                end(conn)
        except Exception as exc:
            errors.append(exc)
        finally:
            conn.close()

    workers = [threading.Thread(target=write, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert count(connect()) == threads * rounds


def test_a_rolled_back_or_closed_transaction_frees_the_lock(connect):
    a, b = connect(timeout=0.5), connect(timeout=0.5)
    begin(a)
    end(a, commit=False)
    begin(b)  # would time out if the rollback had kept the lock
    end(b)
    begin(a)
    with a.cursor() as cursor:
        cursor.execute("INSERT INTO rows VALUES (1, 1)")
    a.close()  # a worker thread's connection closed mid-transaction
    begin(b)
    end(b)
    assert count(b) == 0  # the closed transaction's row was never committed


def test_a_writer_that_waits_too_long_gets_the_database_is_locked_error(connect):
    holder, waiter = connect(), connect(timeout=0.2)
    begin(holder)
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            begin(waiter)
    finally:
        end(holder)
    begin(waiter)  # the failed wait left nothing held
    end(waiter)
