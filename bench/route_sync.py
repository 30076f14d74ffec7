"""Route sync cost on the hub with 10,000 running servers on PostgreSQL:
before (the branch point on main: time-window `since` with a 5 s overlap)
and after (the commit-ordered change feed), same run, same database.

Both hubs are real gunicorn processes (1 gthread worker, 16 threads) on one
PostgreSQL database which this script DROPS AND RECREATES (default
hub_routesync; `--database`). "Before" runs from `git archive` of
`--before` (default 26abc0b9, main before the change feed) in bench/.work,
"after" from this tree. 10,000 users with one running server each are
bulk-inserted; changes are ORM updates of
servers' `url` (and `changed`, which the old code reads) from this process.

Hub CPU = utime+stime of the gunicorn master and worker around the requests,
read from /proc. Measured:
- one full `GET /hub/api/routes` (after: with the version moved each time, so
  the serialized table is built, not reused);
- one `since=` poll when nothing changed (the last change touched 1 server);
- the first poll after a burst of 300 / 10,000 changes, and each poll after it
  while nothing else changes (what an idle router pays every second);
- idle hub CPU with 40 stand-in router workers: 40 real `RouteSync` clients
  (routing/router/client.py) in one process, 10 s, after the last change
  touched 1 server and after one change touching all 10,000;
- propagation: commit of a route change -> the change in a `RouteSync`
  table, 20 trials, with the 1 s poll and (after) with each wake channel: Redis
  (routing/router/wakeup.py) and the wake file routers on the hub's machine
  watch (routing/router/wakefile.py, no Redis).

A wake is given as "redis:URL" or "file:PATH".

    .venv/bin/python bench/route_sync.py [--database URL] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ROOT, WORK, free_port, median, print_table, start_group, stop_group
from _common import tree_cpu_seconds as hub_cpu

SERVERS = 10_000
logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # tasks left at a loop's stop
POLLERS = 40
IDLE_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/hub_routesync")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/18", help="wake channel")
    parser.add_argument(
        "--before",
        default="26abc0b9",
        help="the commit measured as 'before' (default: main before the change feed)",
    )
    parser.add_argument("--pollers", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--hub", help=argparse.SUPPRESS)
    parser.add_argument("--wake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pollers:
        return run_pollers(args.hub, args.pollers, args.wake)

    data = WORK / "route_sync" / "data"
    data.mkdir(parents=True, exist_ok=True)
    env = hub_env(args.database, args.redis, data)
    os.environ.update(env)
    recreate_database(args.database)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    import django

    django.setup()
    from django.conf import settings

    servers = populate()
    token = settings.HUB_ROUTER_TOKEN
    before_tree, base = export_base(args.before)
    results: dict[str, dict[str, str]] = {}
    for label, tree in ((f"before ({base[:8]})", before_tree), ("after", ROOT)):
        print(f"{label}:", file=sys.stderr, flush=True)
        hub = Hub(tree, env, data, token)
        try:
            results[label] = measure(hub, token, servers, wake=None)
            if tree == ROOT:
                results["after + Redis wake"] = measure(
                    hub, token, servers, wake=f"redis:{args.redis}", only_sync=True
                )
                wake_file = data / "run" / "routes-changed"  # this process writes it
                results["after + wake file (no Redis)"] = measure(
                    hub, token, servers, wake=f"file:{wake_file}", only_sync=True
                )
        finally:
            hub.close()
    metrics = list(next(iter(results.values())))
    print_table(
        ["measure (10,000 running servers)", *results],
        [[m, *(r.get(m, "-") for r in results.values())] for m in metrics],
    )
    return 0


# --- set-up -------------------------------------------------------------------------------


def hub_env(database: str, redis_url: str, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        DJANGO_SETTINGS_MODULE="hubsite.settings",
        HUB_DATABASE_URL=database,
        HUB_REDIS_URL=redis_url,
        HUB_DATA_DIR=str(data),
        HUB_LOG_LEVEL="WARNING",
    )
    return env


def recreate_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.strip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def populate() -> list[int]:
    from accounts.models import User
    from servers.models import Server

    users = User.objects.bulk_create(
        [User(username=f"rs{i:05d}") for i in range(SERVERS)], batch_size=2000
    )
    rows = [
        Server(user=u, state=Server.State.RUNNING, url=f"http://127.0.0.1:{20000 + i}")
        for i, u in enumerate(users)
    ]
    return [s.pk for s in Server.objects.bulk_create(rows, batch_size=2000)]


def export_base(rev: str) -> tuple[Path, str]:
    base = git("rev-parse", rev)
    tree = WORK / "route_sync" / f"main-{base[:12]}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", base], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree, base


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


class Hub:
    def __init__(self, tree: Path, env: dict[str, str], data: Path, token: str) -> None:
        self.token = token
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [str(ROOT / ".venv" / "bin" / "gunicorn"), "hubsite.wsgi", "--chdir", str(tree)]
        cmd += ["--bind", f"127.0.0.1:{port}", "--worker-class", "gthread"]
        cmd += ["--workers", "1", "--threads", "16", "--timeout", "0"]
        self.proc = start_group(cmd, log=data / "hub.log", env=env, cwd=tree)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.url + "/hub/api/", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("hub did not start; see " + str(data / "hub.log")) from None
                time.sleep(0.1)

    def cpu(self) -> float:
        return hub_cpu(self.proc.pid)

    def close(self) -> None:
        stop_group(self.proc)


# --- measurements -------------------------------------------------------------------------


def change(servers: list[int], count: int) -> None:
    """COUNT servers move to a new port, in one transaction (one burst)."""
    from django.utils import timezone

    from servers.models import Server

    chosen = random.sample(servers, count) if count < len(servers) else servers
    port = random.randint(30000, 60000)
    Server.objects.filter(pk__in=chosen).update(
        url=f"http://127.0.0.1:{port}", changed=timezone.now()
    )


def measure(
    hub: Hub, token: str, servers: list[int], *, wake: str | None, only_sync: bool = False
) -> dict[str, str]:
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    api = hub.url + "/hub/api/routes"

    def timed(params: dict[str, str] | None = None) -> tuple[float, dict]:
        start = hub.cpu()
        response = session.get(api, params=params, timeout=600)
        response.raise_for_status()
        return hub.cpu() - start, response.json()

    out: dict[str, str] = Shown()
    if not only_sync:
        timed()  # warm-up: imports, connections
        fulls = []  # /proc counts CPU in 10 ms ticks: sums over repeats
        for _ in range(10):
            change(servers, 1)
            cpu, body = timed()
            assert len(body["routes"]) == SERVERS, len(body["routes"])
            fulls.append(cpu)
        out["full read, hub CPU"] = ms(sum(fulls) / len(fulls))
        change(servers, 1)
        version = timed()[1]["version"]
        quiet, returned = polls(timed, version, 100)
        out["quiet poll (last change: 1 server), hub CPU"] = f"{ms(quiet)} ({returned} routes)"
        for k in (300, SERVERS):
            firsts = []
            for _ in range(5):
                time.sleep(5.1)  # alone in the old code's 5 s overlap
                version = timed()[1]["version"]
                change(servers, k)
                cpu, body = timed({"since": version})
                firsts.append(cpu)
            first = sum(firsts) / len(firsts)
            out[f"first poll after {k:,} changes"] = f"{ms(first)} ({len(body['routes'])} routes)"
            each, returned = polls(timed, body["version"], 20)
            out[f"each later poll after {k:,} changes"] = f"{ms(each)} ({returned} routes)"
    for what, burst in (("1 server", 1), ("all 10,000", SERVERS)):
        time.sleep(6)  # out of the old code's 5 s overlap with earlier bursts
        change(servers, burst)
        out[f"idle, {POLLERS} router workers, last change {what}"] = idle(hub, wake)
    p50, p99 = propagation(hub, token, servers, wake)
    out["propagation p50 / p99 (20 trials)"] = f"{p50 * 1000:.0f} / {p99 * 1000:.0f} ms"
    return out


class Shown(dict):
    """Results, also printed to stderr as they come (a run takes minutes)."""

    def __setitem__(self, key: str, value: str) -> None:
        print(f"  {key}: {value}", file=sys.stderr, flush=True)
        super().__setitem__(key, value)


def polls(timed, version: str, count: int) -> tuple[float, int]:
    total, returned = 0.0, 0
    for _ in range(count):
        cpu, body = timed({"since": version})
        total += cpu
        returned = len(body["routes"])
        version = body["version"]
    return total / count, returned


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def idle(hub: Hub, wake: str | None) -> str:
    """Hub CPU while POLLERS RouteSync clients keep in sync and nothing changes."""
    cmd = [sys.executable, __file__, "--pollers", str(POLLERS), "--hub", hub.url]
    if wake:
        cmd += ["--wake", wake]
    env = {**os.environ, "BENCH_ROUTER_TOKEN": hub.token}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready = proc.stdout.readline()  # every poller has its first table
        if not ready.startswith("READY"):
            raise RuntimeError(f"pollers failed: {ready!r}")
        start, clock = hub.cpu(), time.monotonic()
        time.sleep(IDLE_SECONDS)
        share = (hub.cpu() - start) / (time.monotonic() - clock)
    finally:
        proc.terminate()
        proc.wait(30)
    return f"{share * 100:.1f}% of a core"


def run_pollers(hub_url: str, count: int, wake: str | None) -> int:
    """Child: COUNT stand-in router workers (real RouteSync, real HubClient)."""
    from concurrent.futures import ThreadPoolExecutor

    from routing.router.client import HubClient, RouteSync

    token = os.environ["BENCH_ROUTER_TOKEN"]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(16))
        # a long timeout: 40 first full reads at once take the old hub tens of seconds
        syncs = [RouteSync(HubClient(hub_url, token, timeout=300)) for _ in range(count)]
        tasks = [loop.create_task(s.sync_forever()) for s in syncs]
        tasks += [loop.create_task(listener) for s in syncs if (listener := listen(wake, s))]
        while any(s.version is None or (wake and not s.woken) for s in syncs):
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    return 0


def propagation(hub: Hub, token: str, servers: list[int], wake: str | None) -> tuple[float, float]:
    """Commit -> the new target in a RouteSync table, one change at a time."""
    from routing.router.client import HubClient, RouteSync
    from servers.models import Server

    sync = RouteSync(HubClient(hub.url, token))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    futures = [asyncio.run_coroutine_threadsafe(sync.sync_forever(), loop)]
    if listener := listen(wake, sync):
        futures.append(asyncio.run_coroutine_threadsafe(listener, loop))
    while sync.version is None or (wake and not sync.woken):
        time.sleep(0.05)
    delays = []
    try:
        for trial in range(20):
            time.sleep(random.uniform(0.1, 0.4))
            server = Server.objects.select_related("user").get(pk=random.choice(servers))
            target = f"http://127.0.0.1:{40000 + trial}"
            Server.objects.filter(pk=server.pk).update(url=target, changed=django_now())
            committed = time.monotonic()
            while getattr(sync.table.get(server.prefix), "target", None) != target:
                time.sleep(0.001)
            delays.append(time.monotonic() - committed)
    finally:
        for future in futures:
            future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    delays.sort()
    return median(delays), delays[-1]  # of 20 trials, p99 is the slowest


def listen(wake: str | None, sync: object) -> object:
    """The coroutine that wakes SYNC through WAKE ("redis:URL", "file:PATH")."""
    if not wake:
        return None
    kind, _, where = wake.partition(":")
    if kind == "redis":
        from routing.router import wakeup

        return wakeup.listen_forever(where, sync)
    from routing.router import wakefile

    sync.wake_file = Path(where)
    return wakefile.watch_forever(Path(where), sync)


def django_now() -> object:
    from django.utils import timezone

    return timezone.now()


if __name__ == "__main__":
    sys.exit(main())
