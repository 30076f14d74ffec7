"""Django's SQLite backend, with the threads of one process queueing for the
database's write lock in Python instead of in SQLite's busy handler.

SQLite lets one transaction write at a time; a connection that finds the lock
taken sleeps and retries, its sleeps growing to 100 ms, and whoever asks at
the moment the lock is free gets it. With the hub's 32 threads and the
worker's, the lock was free most of the time while every waiter slept: 40
servers stopped at once (bench/k8s_spawn.py) held each DELETE up to 13 s for
13 ms of CPU, and at 100 one waited past the 20 s timeout and was answered
503. Here a transaction that writes (BEGIN IMMEDIATE, the hub's
transaction_mode) first takes its process's lock for that database file,
waiting on it as long as SQLite would have, so within a process the lock
passes from one writer to the next at once and only the few processes
contend in SQLite. It is held exactly as long as SQLite's lock is: from BEGIN
until the transaction ends (commit, rollback or a closed connection), so
nothing can deadlock on it that would not already wait on SQLite."""

from __future__ import annotations

import threading
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def write_lock(name: str) -> threading.Lock:
    """The lock of database file NAME, shared by every connection of this process."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(name), threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_write_lock = False

    def _writes_at_begin(self) -> bool:
        return self.transaction_mode in ("IMMEDIATE", "EXCLUSIVE") and not self.is_in_memory_db()

    def _start_transaction_under_autocommit(self) -> None:
        if not self._writes_at_begin():
            super()._start_transaction_under_autocommit()
            return
        lock = write_lock(self.settings_dict["NAME"])
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if not lock.acquire(timeout=timeout):
            raise OperationalError("database is locked (another thread of this process writes)")
        self._holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _set_autocommit(self, autocommit: bool) -> None:
        try:
            super()._set_autocommit(autocommit)
        finally:
            if autocommit:  # the transaction is over: committed or rolled back
                self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            write_lock(self.settings_dict["NAME"]).release()
