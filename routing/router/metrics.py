"""Router metrics: counters in shared memory, summed across workers on scrape.

Every worker owns one slot (a row of float64) in a memory map that the
supervisor created and handed down as a file descriptor; only that worker
writes its slot, so the hot path is a few lock-free `+=` on a memoryview and
nothing else (no labels dicts, no locks, no I/O). The supervisor (or a lone
worker) serves `GET /health` and `GET /metrics` from a thread on a separate
port and reads all slots: counters and the latency histogram are summed,
per-worker gauges (route-table size and age, staleness) carry a `worker`
label. A restarted worker keeps adding to its predecessor's counters, so the
sums stay monotonic as Prometheus expects.

Standard library only: the Prometheus text format is small enough to write."""

from __future__ import annotations

import asyncio
import json
import math
import mmap
import os
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Latency buckets (seconds), Prometheus' usual spread for HTTP services.
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")

# Slot layout (indexes into one worker's row).
HEARTBEAT, PID, ROUTES, SYNCED_AT, STALE, WS_ACTIVE, WS_TOTAL, ERRORS = range(8)
REQUESTS = 8  # one per STATUS_CLASSES entry
DURATION_SUM = REQUESTS + len(STATUS_CLASSES)
DURATION_COUNT = DURATION_SUM + 1
BUCKETS = DURATION_COUNT + 1  # len(BOUNDS) + 1 (the last is +Inf)
SLOT = BUCKETS + len(BOUNDS) + 1

ALIVE_WITHIN = 5.0  # seconds without a heartbeat before a worker counts as gone
HEARTBEAT_EVERY = 1.0


class Board:
    """The shared rows: `Board.create(n)` in the supervisor, `Board.attach(fd, n)`
    in a worker (the fd survives exec through `pass_fds`)."""

    def __init__(self, buffer: mmap.mmap, workers: int, fd: int | None = None) -> None:
        self.buffer = buffer
        self.workers = workers
        self.fd = fd
        self.values = memoryview(buffer).cast("d")

    @classmethod
    def create(cls, workers: int, *, shared: bool = True) -> Board:
        size = workers * SLOT * 8
        if not shared:
            return cls(mmap.mmap(-1, size), workers)
        fd = os.memfd_create("router-metrics", 0) if hasattr(os, "memfd_create") else _tmp_fd()
        os.ftruncate(fd, size)
        os.set_inheritable(fd, True)
        return cls(mmap.mmap(fd, size), workers, fd)

    @classmethod
    def attach(cls, fd: int, workers: int) -> Board:
        return cls(mmap.mmap(fd, workers * SLOT * 8), workers, fd)

    def row(self, index: int) -> list[float]:
        base = index * SLOT
        return list(self.values[base : base + SLOT])


def _tmp_fd() -> int:
    import tempfile

    with tempfile.TemporaryFile() as handle:
        return os.dup(handle.fileno())


class MetricsAddon:
    """mitmproxy add-on: counts into this worker's slot. `response` fires once a
    (streamed) response is complete, `error` when a flow fails instead (backend
    unreachable or timed out, connection reset); the two never both fire."""

    def __init__(self, board: Board, index: int) -> None:
        self.values = board.values
        self.base = index * SLOT

    def response(self, flow: Any) -> None:
        self.observe(flow.response.status_code, time.time() - flow.request.timestamp_start)

    def error(self, flow: Any) -> None:
        self.failed()

    def websocket_start(self, flow: Any) -> None:
        self.websocket_change(True)

    def websocket_end(self, flow: Any) -> None:
        self.websocket_change(False)

    # the same counts, for the native relay (routing.router.relay), which has no flows

    def observe(self, status_code: int, elapsed: float) -> None:
        values, base = self.values, self.base
        status_class = status_code // 100 - 1
        values[base + REQUESTS + (status_class if 0 <= status_class < 5 else 5)] += 1
        values[base + DURATION_SUM] += elapsed
        values[base + DURATION_COUNT] += 1
        values[base + BUCKETS + bisect_left(BOUNDS, elapsed)] += 1

    def failed(self) -> None:
        self.values[self.base + ERRORS] += 1

    def websocket_change(self, opened: bool) -> None:
        if opened:
            self.values[self.base + WS_ACTIVE] += 1
            self.values[self.base + WS_TOTAL] += 1
        else:
            self.values[self.base + WS_ACTIVE] -= 1


async def heartbeat_forever(board: Board, index: int, sync: Any) -> None:
    """Once a second: liveness, route-table size, last successful sync, staleness."""
    values, base = board.values, index * SLOT
    values[base + PID] = os.getpid()
    values[base + WS_ACTIVE] = 0  # a restarted worker starts with no sockets
    while True:
        values[base + HEARTBEAT] = time.time()
        values[base + ROUTES] = len(sync.table)
        if sync.last_ok:  # monotonic -> wall clock
            values[base + SYNCED_AT] = time.time() - (time.monotonic() - sync.last_ok)
        values[base + STALE] = 1.0 if sync.stale else 0.0
        await asyncio.sleep(HEARTBEAT_EVERY)


# --- reading: /health and /metrics --------------------------------------------------


def snapshot(board: Board, now: float | None = None) -> dict[str, Any]:
    """Everything /health and /metrics report, from the current rows."""
    now = time.time() if now is None else now
    rows = [board.row(i) for i in range(board.workers)]
    alive = [i for i, row in enumerate(rows) if now - row[HEARTBEAT] < ALIVE_WITHIN]
    totals = [sum(column) for column in zip(*rows, strict=True)]
    ages = {i: (now - rows[i][SYNCED_AT]) if rows[i][SYNCED_AT] else math.inf for i in alive}
    return {
        "rows": rows,
        "alive": alive,
        "totals": totals,
        "ages": ages,
        "ws_active": sum(rows[i][WS_ACTIVE] for i in alive),
    }


def health(board: Board) -> tuple[int, dict[str, Any]]:
    """200 while at least one worker is alive (it serves, stale or not), else 503."""
    snap = snapshot(board)
    alive, rows, ages = snap["alive"], snap["rows"], snap["ages"]
    worst_age = max(ages.values(), default=math.inf)
    body = {
        "status": "ok" if alive else "down",
        "workers": board.workers,
        "workers_alive": len(alive),
        "routes": max((int(rows[i][ROUTES]) for i in alive), default=0),
        "table_age_seconds": None if math.isinf(worst_age) else round(worst_age, 3),
        "stale": not alive or any(rows[i][STALE] or math.isinf(ages[i]) for i in alive),
    }
    return (200 if alive else 503), body


def exposition(board: Board) -> str:
    """Prometheus text format (version 0.0.4)."""
    snap = snapshot(board)
    totals, rows, alive, ages = snap["totals"], snap["rows"], snap["alive"], snap["ages"]
    out: list[str] = []

    def family(name: str, kind: str, text: str, samples: Iterable[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    family(
        "router_requests_total",
        "counter",
        "Proxied responses completed, by status class.",
        ((f'{{code="{c}"}}', totals[REQUESTS + i]) for i, c in enumerate(STATUS_CLASSES)),
    )
    family(
        "router_errors_total",
        "counter",
        "Flows that failed (backend unreachable or timed out, connection reset).",
        [("", totals[ERRORS])],
    )
    cumulative, buckets = 0.0, []
    for i, bound in enumerate((*BOUNDS, math.inf)):
        cumulative += totals[BUCKETS + i]
        buckets.append((f'_bucket{{le="{_number(bound)}"}}', cumulative))
    family(
        "router_request_duration_seconds",
        "histogram",
        "Time from request start to the end of the response.",
        [*buckets, ("_sum", totals[DURATION_SUM]), ("_count", totals[DURATION_COUNT])],
    )
    family(
        "router_websockets_active",
        "gauge",
        "WebSockets open now.",
        [("", snap["ws_active"])],
    )
    family("router_websockets_total", "counter", "WebSockets opened.", [("", totals[WS_TOTAL])])
    family("router_workers_alive", "gauge", "Worker processes alive.", [("", len(alive))])
    family(
        "router_routes",
        "gauge",
        "Routes in the worker's table.",
        ((f'{{worker="{i}"}}', rows[i][ROUTES]) for i in alive),
    )
    family(
        "router_route_table_age_seconds",
        "gauge",
        "Seconds since the worker's last successful sync with the hub.",
        ((f'{{worker="{i}"}}', ages[i]) for i in alive),
    )
    family(
        "router_route_table_stale",
        "gauge",
        "1 while the worker cannot sync with the hub (it keeps serving its last table).",
        ((f'{{worker="{i}"}}', rows[i][STALE]) for i in alive),
    )
    return "\n".join(out) + "\n"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value):
        return str(int(value))
    return repr(value)


class MetricsServer:
    """/health and /metrics on their own port, served from a daemon thread."""

    def __init__(self, board: Board, sock: socket.socket) -> None:
        handler = type("MetricsHandler", (_MetricsHandler,), {"board": board})
        self.httpd = ThreadingHTTPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.httpd.socket.close()
        self.httpd.socket = sock
        self.httpd.daemon_threads = True
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _MetricsHandler(BaseHTTPRequestHandler):
    board: Board
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            status, body = health(self.board)
            self._reply(status, json.dumps(body).encode(), "application/json")
        elif path == "/metrics":
            text = exposition(self.board).encode()
            self._reply(200, text, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._reply(404, b"only /health and /metrics here\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def listen_metrics(host: str, port: int) -> socket.socket:
    """The metrics socket, bound early so a taken port fails at start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock
