"""API latency with 1,000 open spawn-progress streams, before and after the
stream server, same run, same machine.

"Before" is the platform as main ran it until the stream server: the router
without --stream-url, so progress streams go to the hub's gunicorn (2 workers
x 16 threads, the Procfile's hub line), each holding a thread and polling the
database. "After" is `make run`'s shape: the router sends progress paths to
`python -m hubsite.streams` (uvicorn, one database reader for every stream).
Both are real processes from the Procfile (hub, streams, router) on one data
dir: SQLite by default, or `--database URL` (PostgreSQL: this script DROPS AND
RECREATES the database it names).

Measured, through the router, for each:
- API latency, `GET /hub/api/users/alice` with a token, REQUESTS sequential
  requests (each on a new connection): p50/p99 before any stream is open and
  again while STREAMS streams of alice's starting server are open (a request
  that takes longer than TIMEOUT counts as failed and is not in p50/p99);
- how many streams got their first event within 60 s (with fewer, only 20
  API requests are tried while they are open: each would wait TIMEOUT);
- hub and stream-server CPU per second while the streams sit open (10 s);
- when the spawn ends (a READY event written): time until every open stream
  has its ready event, p50/p99.

    .venv/bin/python bench/progress_streams.py [--streams 1000] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, free_port, print_table, start_group, stop_group, tree_cpu_seconds
from _common import wait_until as wait

PYTHON = str(ROOT / ".venv" / "bin" / "python")
REQUESTS = 200
TIMEOUT = 5.0
IDLE = 10.0

SETUP = """
from accounts import services
from servers.models import Server, ServerEvent
alice = services.create_user("alice")
server = Server.objects.create(user=alice, name="", state=Server.State.STARTING)
ServerEvent.objects.create(server=server, kind="start_requested", message="Server requested")
_, raw = services.issue_token(alice, scopes=["inherit"], note="bench")
print("TOKEN=" + raw)
"""

READY = """
import time
from servers.models import Server, ServerEvent
server = Server.objects.get(user__username="alice", name="")
ServerEvent.objects.create(server=server, kind="ready", progress=100, message="ready")
print("WROTE", time.time())
"""


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no {name!r} line in the Procfile")


class Platform:
    def __init__(self, tmp: Path, database: str, *, streams: bool) -> None:
        self.tmp = tmp
        self.hub_port, self.stream_port, self.router_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DJANGO_"))}
        env.update(
            HUB_DATA_DIR=str(tmp / "data"),
            HUB_BIND_URL=f"http://127.0.0.1:{self.hub_port}",
            HUB_STREAM_URL=f"http://127.0.0.1:{self.stream_port}",
            HUB_ROUTER_LISTEN=f"127.0.0.1:{self.router_port}",
            HUB_PUBLIC_URL=f"http://127.0.0.1:{self.router_port}",
            HUB_ROUTER_METRICS_LISTEN=f"127.0.0.1:{free_port()}",
            HUB_ROUTE_WAKE_FILE="",
            HUB_LOG_LEVEL="WARNING",
        )
        if database:
            env["HUB_DATABASE_URL"] = database
        self.env = env
        run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True, "text": True}
        subprocess.run([PYTHON, "manage.py", "migrate", "--verbosity", "0"], **run)
        out = subprocess.run([PYTHON, "manage.py", "shell", "-c", SETUP], **run).stdout
        self.token = next(line[6:] for line in out.splitlines() if line.startswith("TOKEN="))
        router, router_env = procfile_line("router"), dict(env)
        if not streams:  # before: the router sends progress to the hub
            router = router.split(" --stream-url", 1)[0]
            del router_env["HUB_STREAM_URL"]
        self.procs = {
            "hub": self._start("hub", procfile_line("hub")),
            "router": self._start("router", router, router_env),
        }
        if streams:
            self.procs["streams"] = self._start("streams", procfile_line("streams"))
        self.url = f"http://127.0.0.1:{self.router_port}"
        wait(lambda: api_get(self.url, self.token, 2)[0] == 200, timeout=60, what="the hub")

    def _start(
        self, name: str, line: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        command = ["bash", "-c", "exec " + line]
        return start_group(command, log=self.tmp / f"{name}.log", env=env or self.env, cwd=ROOT)

    def cpu(self, name: str) -> float:
        proc = self.procs.get(name)
        return tree_cpu_seconds(proc.pid) if proc is not None else 0.0

    def ready(self) -> float:
        """Write the spawn's READY event; the wall-clock time it was committed."""
        run = {"cwd": ROOT, "env": self.env, "capture_output": True, "text": True}
        done = subprocess.run([PYTHON, "manage.py", "shell", "-c", READY], **run)
        if done.returncode != 0:
            raise SystemExit(f"writing the READY event failed:\n{done.stderr[-3000:]}")
        out = done.stdout
        return float(next(line.split()[1] for line in out.splitlines() if line.startswith("WROTE")))

    def close(self) -> None:
        for proc in self.procs.values():
            stop_group(proc)


def api_get(url: str, token: str, timeout: float) -> tuple[int, float]:
    where = urlsplit(url)
    started = time.perf_counter()
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
    try:
        conn.request("GET", "/hub/api/users/alice", headers={"Authorization": f"token {token}"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started
    finally:
        conn.close()


def latency(url: str, token: str, count: int) -> tuple[str, str, int]:
    """(p50 ms, p99 ms, failed) of COUNT sequential API requests."""
    times, failed = [], 0
    for _ in range(count):
        status, took = api_get(url, token, TIMEOUT)
        if status == 200:
            times.append(took * 1000)
        else:
            failed += 1
    if not times:
        return "-", "-", failed
    times.sort()
    return f"{statistics.median(times):.1f}", f"{percentile(times, 0.99):.1f}", failed


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Streams:
    """STREAMS open progress streams, on this process's event loop in a thread."""

    def __init__(self, url: str, token: str, count: int) -> None:
        self.where = urlsplit(url)
        self.token = token
        self.count = count
        self.opened: list[float] = []  # first event seen
        self.ready_at: list[float] = []
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task[None]] = []

    async def _one(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.where.hostname, self.where.port)
        except OSError:
            return
        writer.write(
            (
                "GET /hub/api/users/alice/server/progress HTTP/1.1\r\n"
                f"Host: {self.where.netloc}\r\nAuthorization: token {self.token}\r\n\r\n"
            ).encode()
        )
        seen, opened = b"", False
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                seen += chunk
                if not opened and b"Server requested" in seen:
                    opened = True
                    self.opened.append(time.perf_counter())
                if b'"ready": true' in seen:
                    self.ready_at.append(time.time())  # wall clock: compared with the writer's
                    return
        finally:
            writer.close()

    def open(self) -> None:
        async def start() -> None:
            self.tasks = [asyncio.ensure_future(self._one()) for _ in range(self.count)]

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result()

    def close(self) -> None:
        async def cancel() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


def measure(label: str, platform: Platform, count: int) -> list[object]:
    before = latency(platform.url, platform.token, REQUESTS)
    streams = Streams(platform.url, platform.token, count)
    streams.open()
    deadline = time.monotonic() + 60
    while len(streams.opened) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    opened = len(streams.opened)  # before the spawn ends (which frees the hub's threads)
    cpu_before = {name: platform.cpu(name) for name in ("hub", "streams")}
    time.sleep(IDLE)
    cpu = {name: (platform.cpu(name) - cpu_before[name]) / IDLE for name in cpu_before}
    during = latency(platform.url, platform.token, REQUESTS if opened == count else 20)
    written = platform.ready()
    deadline = time.monotonic() + 120
    while len(streams.ready_at) < len(streams.opened) and time.monotonic() < deadline:
        time.sleep(0.05)
    delays = sorted((t - written) * 1000 for t in streams.ready_at)
    streams.close()
    ready = f"{statistics.median(delays):.0f} / {percentile(delays, 0.99):.0f}" if delays else "-"
    return [
        label,
        f"{opened}/{count}",
        f"{before[0]} / {before[1]}",
        f"{during[0]} / {during[1]}",
        f"{during[2]}",
        f"{cpu['hub'] * 100:.1f}%",
        f"{cpu['streams'] * 100:.1f}%" if "streams" in platform.procs else "-",
        f"{len(delays)} in {ready}",
    ]


def recreate(database: str) -> None:
    import psycopg

    name = urlsplit(database).path.lstrip("/")
    admin = database.replace(f"/{name}", "/postgres")

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--database", default="", help="PostgreSQL URL (dropped and recreated)")
    args = parser.parse_args()
    rows = []
    for label, with_streams in (
        ("before: streams on the hub's threads", False),
        ("after: stream server", True),
    ):
        if args.database:
            recreate(args.database)
        with tempfile.TemporaryDirectory(prefix="bench-progress-") as tmp:
            platform = Platform(Path(tmp), args.database, streams=with_streams)
            try:
                rows.append(measure(label, platform, args.streams))
            finally:
                platform.close()
    print(
        f"\n{args.streams} progress streams, {REQUESTS} API requests "
        f"({'PostgreSQL' if args.database else 'SQLite'}, {os.cpu_count()} cores)"
    )
    print_table(
        [
            "",
            "streams opened",
            "API p50/p99 ms, no streams",
            "API p50/p99 ms, streams open",
            f"API failed (> {TIMEOUT:g} s)",
            "hub CPU",
            "stream server CPU",
            "ready events p50/p99 ms",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
