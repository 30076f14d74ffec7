"""Stops a worker has begun and the backend finishes on its own (pods
terminating), followed by one thread per process instead of one Celery
thread each.

A stop task asks the spawner to stop the server and waits a moment
(launch.STOP_HOLD). A server still going after that is handed here with what
finishes it (launch.finish_stop), and the task returns: its thread is free
for the next start. With 32 threads a worker stopped 100 pods in waves of 32,
each wave as long as a pod's termination, and started nothing meanwhile.

The thread here looks at every pending stop each EVERY seconds (for a pod, a
look at the shared watch's copy) and finishes those whose server is gone.
A worker that dies with stops pending leaves their servers stopping, which
reconcile finishes (scheduler/reconcile.py, FinishStop); a worker shutting
down waits for them (drain)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections

from servers.spawners import StopInProgress

log = logging.getLogger(__name__)


class PendingStops:
    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self._items: dict[int, tuple[StopInProgress, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, server_id: int, going: StopInProgress, finish: Callable[[], None]) -> None:
        """Run FINISH once GOING says the server is gone."""
        with self._lock:
            self._items[server_id] = (going, finish)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pending-stops", daemon=True)
                self._thread.start()
        self._wake.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, server_id: object) -> bool:
        with self._lock:
            return server_id in self._items

    def run_once(self) -> int:
        """Finish the stops whose server is gone; how many are still pending."""
        with self._lock:
            items = list(self._items.items())
        finished = False
        for server_id, (going, finish) in items:
            try:
                if not going.wait(0):
                    continue
                finish()
                finished = True
            except DatabaseError as exc:  # kept: tried again next round
                log.warning("could not finish the stop of server %s yet: %s", server_id, exc)
                close_old_connections()
                continue
            except Exception:  # dropped: reconcile finishes the stale stop
                log.exception("finishing the stop of server %s failed", server_id)
            with self._lock:
                self._items.pop(server_id, None)
        if finished:
            close_old_connections()  # this thread is never in a request
        return len(self)

    def drain(self, timeout: float) -> int:
        """Finish what is pending, for up to TIMEOUT seconds (a worker shutting
        down); how many stops are left to reconcile."""
        deadline = time.monotonic() + timeout
        while self.run_once() and time.monotonic() < deadline:
            time.sleep(self.every)
        return len(self)

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before looking: an add() after this wakes the wait
            if self.run_once():
                time.sleep(self.every)
            else:
                self._wake.wait()


_pending = PendingStops()


def pending() -> PendingStops:
    """This process's pending stops."""
    return _pending
