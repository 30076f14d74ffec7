"""Router speed: configurable-http-proxy 5.3.0 vs our router (1 and 2 workers), same run.

Every proxy forwards /user/alice/... to the same node backend (any path -> a
1 KiB body, keep-alive; WebSocket echo with the `ws` package), installed on
first use into bench/.work (npm). Our router gets its routes from a tiny fake
hub (the route API of routing/api/views.py, in this process); CHP gets its route
through its REST API. Rounds are interleaved (the order flips every round) so
drift on a shared machine hits every proxy; the table shows medians and ratios
vs CHP from the same rounds, plus the targets of issue 3 with met / not met.

Measured per proxy (shared/anchors/README.md says how the anchors were taken):
- `wrk -t1 -c32 -d8s --latency` and `-c1 -d5s` against /user/alice/api:
  req/s, p50/p99 latency;
- CPU µs per request: utime+stime of the proxy's processes (all workers)
  over the -c32 run / requests;
- WebSocket RTT p50: 1,000 sequential 32-byte echo round trips, Python
  `websockets` client;
- through a real jupyter-server (`GET /user/jup/api`, wrk -c8): direct vs
  each proxy;
- RSS with 10,000 routes (and req/s at that size), RSS over a long WebSocket
  session (20,000 x 1 KiB echoes on one socket);
- route propagation (ours only, against a real hub: gunicorn + a temp
  HUB_DATA_DIR + SQLite): a Server row becomes running with a url (committed
  through the ORM in a Django shell subprocess) -> first proxied 200 through
  the router, in two ways: the client's first request comes after "ready"
  (what the hub's ready signal leads to), and a client polling every 10 ms
  throughout (the route must come through the sync).

    .venv/bin/python bench/router.py                       # everything, 3 rounds
    .venv/bin/python bench/router.py --rounds 1 --duration 4 --skip jupyter,propagation
    .venv/bin/python bench/router.py --only ours1 --skip ...   # our router alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from _common import (
    ROOT,
    WORK,
    free_port,
    median,
    print_table,
    start_group,
    stop_group,
    tree_cpu_seconds,
    wait_until,
)

WRK = shutil.which("wrk") or "/usr/bin/wrk"
NPM = shutil.which("npm") or "npm"
NODE = shutil.which("node") or "node"
CHP_DIR = WORK / "chp"
CHP_BIN = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
NODE_DIR = WORK / "router-backend"
HUB_PYTHON = str(ROOT / ".venv" / "bin" / "python")
JUPYTER_SERVER = ROOT / ".venv-user" / "bin" / "jupyter-server"
TOKEN = "bench-router-token"
PATH = "/user/alice/api"

BACKEND_JS = r"""
// any path -> 1 KiB body (keep-alive); WebSocket upgrade -> echo
const http = require("http");
const { WebSocketServer } = require("ws");
const body = Buffer.alloc(1024, "x");
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": body.length,
                      "X-Bench-Backend": "node"});
  res.end(body);
});
server.keepAliveTimeout = 60000;
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 * 1024 });
wss.on("connection", (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })));
server.listen(Number(process.argv[2]), "127.0.0.1", () => console.log("backend ready"));
"""


class BenchError(RuntimeError):
    pass


# --- installs and helpers ---------------------------------------------------------------


def npm_install(prefix: Path, package: str, marker: Path) -> None:
    if marker.exists():
        return
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"installing {package} into {prefix} ...", flush=True)
    subprocess.run(
        [NPM, "install", "--prefix", str(prefix), package],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def wait_for_log(proc: subprocess.Popen[bytes], log: Path, pattern: str, what: str) -> str:
    def seen() -> str | None:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        match = re.search(pattern, log.read_text(errors="replace"))
        return match.group(0) if match else None

    return wait_until(seen, timeout=30, what=what)


# --- processes --------------------------------------------------------------------------


@dataclass
class Proxy:
    key: str  # chp / ours1 / ours2
    label: str
    url: str
    proc: subprocess.Popen[bytes]
    results: dict[str, list[float]] = field(default_factory=dict)

    def pids(self) -> list[int]:
        from _common import descendants

        return [self.proc.pid, *descendants(self.proc.pid)]

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def rss(self) -> float:
        return rss_mib(self.pids())

    def add(self, name: str, value: float) -> None:
        self.results.setdefault(name, []).append(value)

    def close(self) -> None:
        stop_group(self.proc)


def start_backend(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    npm_install(NODE_DIR, "ws@8", NODE_DIR / "node_modules" / "ws")
    script = NODE_DIR / "backend.js"
    script.write_text(BACKEND_JS)
    port = free_port()
    log = tmp / "backend.log"
    proc = start_group([NODE, str(script), str(port)], log=log, cwd=NODE_DIR)
    wait_for_log(proc, log, "backend ready", "node backend")
    return f"http://127.0.0.1:{port}", proc


def start_chp(tmp: Path, default_target: str) -> tuple[Proxy, str]:
    npm_install(CHP_DIR, "configurable-http-proxy@5.3.0", CHP_BIN)
    port, api_port = free_port(), free_port()
    log = tmp / "chp.log"
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN}
    cmd = [
        str(CHP_BIN),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-ip",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        "--default-target",
        default_target,
        "--log-level",
        "warn",
    ]
    proc = start_group(cmd, log=log, env=env, cwd=tmp)
    api = f"http://127.0.0.1:{api_port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"CHP exited: {log.read_text(errors='replace')}")
        try:
            return requests.get(f"{api}/api/routes", headers=auth(), timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(up, timeout=30, what="CHP")
    # the node process itself (the .bin entry is a symlink to a node script)
    return Proxy("chp", "CHP 5.3.0", f"http://127.0.0.1:{port}", proc), api


def auth() -> dict[str, str]:
    return {"Authorization": f"token {TOKEN}"}


def chp_add(api: str, prefix: str, target: str, session: requests.Session | None = None) -> None:
    call = (session or requests).post
    resp = call(
        f"{api}/api/routes{prefix.rstrip('/')}",
        headers=auth(),
        data=json.dumps({"target": target}),
        timeout=10,
    )
    if resp.status_code != 201:
        raise BenchError(f"CHP add route {prefix}: {resp.status_code} {resp.text}")


def start_router(
    tmp: Path,
    hub_url: str,
    workers: int,
    token: str = TOKEN,
    label: str = "",
    env_extra: dict[str, str] | None = None,
) -> Proxy:
    log = tmp / f"router-{workers}w-{time.monotonic_ns()}.log"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(HUB_ROUTER_TOKEN=token, **(env_extra or {}))
    cmd = [
        HUB_PYTHON,
        "-m",
        "routing.router",
        "--listen",
        "127.0.0.1:0",
        "--hub-url",
        hub_url,
        "--workers",
        str(workers),
    ]
    proc = start_group(cmd, log=log, env=env, cwd=ROOT)
    line = wait_for_log(proc, log, r"router listening on http://\S+", "router")
    url = line.split()[-1]
    key = f"ours{workers}"
    return Proxy(key, label or f"ours, {workers} worker{'s' if workers > 1 else ''}", url, proc)


class FakeHub:
    """The route API of routing/api/views.py over a fixed table (changes: none)."""

    def __init__(self, routes: dict[str, dict[str, str]]) -> None:
        self.routes = routes
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/hub/api/routes":
                    since = "since" in parse_qs(url.query)
                    routes = {} if since else hub.routes
                    body = {"version": "1", "full": not since, "routes": routes}
                    self.reply(200, json.dumps(body).encode())
                elif url.path == "/hub/api/routes/lookup":
                    self.reply(404, b'{"status": 404, "message": "no route"}')
                else:
                    self.reply(404, b'{"status": 404, "message": "fake hub"}')

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def route(prefix: str, target: str) -> dict[str, str]:
    parts = prefix.strip("/").split("/")
    return {"target": target, "user": parts[1], "server_name": parts[2] if len(parts) > 2 else ""}


def fake_routes(backend: str, extra: int, jupyter: str | None) -> dict[str, dict[str, str]]:
    routes = {"/user/alice/": route("/user/alice/", backend)}
    if jupyter:
        routes["/user/jup/"] = route("/user/jup/", jupyter)
    for i in range(extra):
        routes[f"/user/u{i:05d}/"] = route(f"/user/u{i:05d}/", backend)
    return routes


# --- load -------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, conns: int, duration: float) -> WrkResult:
    cmd = [WRK, "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        requests_ = int(re.search(r"(\d+) requests in", out).group(1))
        p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
        p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    except AttributeError:
        raise BenchError(f"cannot parse wrk output:\n{out}") from None
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    return WrkResult(rps, requests_, p50, p99, errors)


def measure_http(proxy: Proxy, duration: float, short: float) -> None:
    before = proxy.cpu()
    result = run_wrk(proxy.url + PATH, 32, duration)
    used = proxy.cpu() - before
    if result.errors > result.requests * 0.001:
        raise BenchError(f"{proxy.label}: {result.errors} errors of {result.requests} requests")
    proxy.add("rps32", result.rps)
    proxy.add("p50", result.p50_ms)
    proxy.add("p99", result.p99_ms)
    proxy.add("cpu", used / max(result.requests, 1) * 1e6)
    one = run_wrk(proxy.url + PATH, 1, short)
    proxy.add("rps1", one.rps)
    proxy.add("p50_1", one.p50_ms)


async def _ws_rtts(url: str, count: int, size: int) -> list[float]:
    from websockets.asyncio.client import connect

    payload = b"x" * size
    rtts = []
    async with connect(url, max_size=None, compression=None) as ws:
        for _ in range(count):
            start = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            rtts.append(time.perf_counter() - start)
    return rtts


def ws_rtt_ms(base: str, count: int = 1000) -> float:
    url = "ws" + base[4:] + "/user/alice/api/kernels/ws"
    return statistics.median(asyncio.run(_ws_rtts(url, count, 32))) * 1000


def ws_long_session(proxy: Proxy, messages: int, size: int) -> tuple[float, float, float]:
    """RSS before, after the first 10% and at the end of one long echo session."""
    url = "ws" + proxy.url[4:] + "/user/alice/api/kernels/ws"
    marks: list[float] = [proxy.rss()]

    async def session() -> None:
        from websockets.asyncio.client import connect

        payload = b"y" * size
        async with connect(url, max_size=None, compression=None) as ws:
            for i in range(messages):
                await ws.send(payload)
                await ws.recv()
                if i == messages // 10:
                    marks.append(proxy.rss())
            marks.append(proxy.rss())

    asyncio.run(session())
    return marks[0], marks[1], marks[2]


# --- route propagation against a real hub ---------------------------------------------------

PROPAGATION_SCRIPT = r"""
import sys, time
from django.utils import timezone
from accounts import services
from servers.models import Server
target = {target!r}
servers = []
for i in range({trials}):
    user = services.create_user(f"prop{{i:03d}}")
    servers.append(Server.objects.create(user=user, name=""))
print("READY", flush=True)
for line in sys.stdin:
    i = int(line)
    Server.objects.filter(pk=servers[i].pk).update(
        state=Server.State.RUNNING, url=target, changed=timezone.now())
    print(f"DONE {{i}} {{time.time():.6f}}", flush=True)
"""


@dataclass
class RealHub:
    url: str
    data: Path
    proc: subprocess.Popen[bytes]

    def close(self) -> None:
        stop_group(self.proc)


def start_real_hub(tmp: Path) -> RealHub:
    port = free_port()
    data = tmp / "hubdata"
    env = hub_env(data, port)
    run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True}
    subprocess.run([HUB_PYTHON, "manage.py", "migrate", "--verbosity", "0"], **run)
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "hubsite.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        "2",
        "--threads",
        "8",
    ]
    log = tmp / "hub.log"
    proc = start_group(cmd, log=log, env=env, cwd=ROOT)
    hub = RealHub(f"http://127.0.0.1:{port}", data, proc)
    token = (data / "router_token").read_text().strip()

    def up() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"hub exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            return (
                requests.get(
                    f"{hub.url}/hub/api/routes",
                    headers={"Authorization": f"token {token}"},
                    timeout=2,
                ).status_code
                == 200
            )
        except requests.RequestException:
            return False

    wait_until(up, timeout=60, what="hub")
    return hub


def hub_env(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        HUB_DATA_DIR=str(data), HUB_BIND_URL=f"http://127.0.0.1:{port}", HUB_LOG_LEVEL="WARNING"
    )
    return env


def measure_propagation(tmp: Path, backend: str, trials: int) -> dict[str, list[float]]:
    hub = start_real_hub(tmp)
    port = int(hub.url.rsplit(":", 1)[1])
    token = (hub.data / "router_token").read_text().strip()
    router = start_router(tmp, hub.url, 1, token=token)
    script = PROPAGATION_SCRIPT.format(target=backend, trials=2 * trials)
    shell = subprocess.Popen(
        [HUB_PYTHON, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=hub_env(hub.data, port),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    found: dict[str, list[float]] = {"after ready": [], "polling": []}
    try:
        for line in shell.stdout:  # Django's shell may print a banner first
            if line.strip() == "READY":
                break
        else:
            raise BenchError("the Django shell did not start")
        session = requests.Session()

        def proxied(i: int) -> bool:
            resp = session.get(
                f"{router.url}/user/prop{i:03d}/api", timeout=5, allow_redirects=False
            )
            return resp.status_code == 200 and resp.headers.get("X-Bench-Backend") == "node"

        for i in range(2 * trials):
            polling = i % 2 == 1
            if polling:
                for _ in range(5):  # the router has seen (and cached) the miss
                    proxied(i)
                    time.sleep(0.01)
            shell.stdin.write(f"{i}\n")
            shell.stdin.flush()
            committed = float(shell.stdout.readline().split()[2])
            while not proxied(i):
                time.sleep(0.01 if polling else 0.002)
            found["polling" if polling else "after ready"].append(time.time() - committed)
            time.sleep(0.05)
    finally:
        shell.kill()
        router.close()
        hub.close()
    return found


# --- jupyter-server ---------------------------------------------------------------------------


def start_jupyter(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = tmp / "jupyter.log"
    cmd = [
        str(JUPYTER_SERVER),
        "--ip",
        "127.0.0.1",
        f"--port={port}",
        "--no-browser",
        "--ServerApp.base_url=/user/jup/",
        "--IdentityProvider.token=",
        "--ServerApp.allow_root=True",
        f"--ServerApp.root_dir={tmp}",
    ]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8"}
    proc = start_group(cmd, log=log, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"jupyter-server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            return requests.get(url + "/user/jup/api", timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(up, timeout=60, what="jupyter-server")
    return url, proc


# --- report -----------------------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # nan
        return "-"
    return f"{value:,.{digits}f}"


def ratio(mine: list[float], chp: list[float]) -> float:
    """Median of per-round ratios (rounds are interleaved, so drift cancels)."""
    pairs = [m / c for m, c in zip(mine, chp, strict=False) if c]
    return median(pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="wrk -c32 seconds")
    parser.add_argument("--short", type=float, default=5.0, help="wrk -c1 seconds")
    parser.add_argument("--trials", type=int, default=50, help="route propagation trials")
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--ws-messages", type=int, default=20_000)
    parser.add_argument("--only", default="chp,ours1,ours2")
    parser.add_argument("--skip", default="", help="any of: ws,jupyter,big,long,propagation")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    skip = set(filter(None, args.skip.split(",")))
    tmp = Path(tempfile.mkdtemp(prefix="bench-router-", dir=WORK if WORK.exists() else None))
    started: list[Callable[[], None]] = []
    try:
        return run(args, only, skip, tmp, started)
    finally:
        for close in reversed(started):
            try:
                close()
            except Exception as exc:
                print(f"cleanup: {exc}", file=sys.stderr)
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(
    args: argparse.Namespace,
    only: set[str],
    skip: set[str],
    tmp: Path,
    started: list[Callable[[], None]],
) -> int:
    backend, backend_proc = start_backend(tmp)
    started.append(lambda: stop_group(backend_proc))
    jupyter = None
    if "jupyter" not in skip:
        jupyter, jupyter_proc = start_jupyter(tmp)
        started.append(lambda: stop_group(jupyter_proc))
    hub = FakeHub(fake_routes(backend, 0, jupyter))
    started.append(hub.close)
    proxies: list[Proxy] = []
    if "chp" in only:
        chp, chp_api = start_chp(tmp, hub.url)
        started.append(chp.close)
        chp_add(chp_api, "/user/alice/", backend)
        if jupyter:
            chp_add(chp_api, "/user/jup/", jupyter)
        proxies.append(chp)
    for workers in (1, 2):
        if f"ours{workers}" in only:
            proxy = start_router(tmp, hub.url, workers)
            started.append(proxy.close)
            proxies.append(proxy)
    for proxy in proxies:  # warm up, and check every proxy reaches the backend
        resp = requests.get(proxy.url + PATH, timeout=5)
        if resp.status_code != 200 or resp.headers.get("X-Bench-Backend") != "node":
            raise BenchError(f"{proxy.label}: {PATH} -> {resp.status_code} {resp.text[:200]}")
        run_wrk(proxy.url + PATH, 32, 1)

    direct_rps: list[float] = []
    for n in range(args.rounds):
        order = proxies if n % 2 == 0 else proxies[::-1]
        for proxy in order:
            print(f"round {n + 1}/{args.rounds}: {proxy.label} ...", flush=True)
            measure_http(proxy, args.duration, args.short)
            if "ws" not in skip:
                proxy.add("ws", ws_rtt_ms(proxy.url))
            if jupyter:
                proxy.add("jup", run_wrk(proxy.url + "/user/jup/api", 8, args.short).rps)
        if jupyter:
            direct_rps.append(run_wrk(jupyter + "/user/jup/api", 8, args.short).rps)

    chp = next((p for p in proxies if p.key == "chp"), None)
    report_http(proxies, chp, direct_rps)

    extra: dict[str, dict[str, float]] = {}
    if "long" not in skip:
        for proxy in proxies:
            print(f"long WebSocket session: {proxy.label} ...", flush=True)
            start, early, end = ws_long_session(proxy, args.ws_messages, 1024)
            extra.setdefault(proxy.key, {}).update(rss0=start, rss_early=early, rss_end=end)
    if "big" not in skip:
        big_routes(args, tmp, backend, jupyter, only, extra, started)
    if extra:
        report_memory(proxies, extra, args)
    propagation = None
    if "propagation" not in skip:
        print(f"route propagation: {args.trials} + {args.trials} trials ...", flush=True)
        propagation = measure_propagation(tmp, backend, args.trials)
        rows = []
        for mode, values in propagation.items():
            values_ms = sorted(v * 1000 for v in values)
            p99 = values_ms[min(len(values_ms) - 1, int(len(values_ms) * 0.99))]
            rows.append(
                [
                    mode,
                    len(values_ms),
                    fmt(median(values_ms), 1),
                    fmt(p99, 1),
                    fmt(max(values_ms), 1),
                ]
            )
        print("\nRoute propagation (ours, real hub): committed 'running' -> first proxied 200")
        print_table(["client", "trials", "p50 ms", "p99 ms", "max ms"], rows)
    report_targets(proxies, chp, direct_rps, extra, propagation)
    return 0


def big_routes(
    args: argparse.Namespace,
    tmp: Path,
    backend: str,
    jupyter: str | None,
    only: set[str],
    extra: dict[str, dict[str, float]],
    started: list[Callable[[], None]],
) -> None:
    """RSS (and req/s) with 10,000 routes, each proxy started fresh."""
    hub = FakeHub(fake_routes(backend, args.routes, jupyter))
    started.append(hub.close)
    if "chp" in only:
        print(f"CHP with {args.routes:,} routes ...", flush=True)
        proxy, api = start_chp(tmp, hub.url)
        try:
            session = requests.Session()
            began = time.monotonic()
            for prefix, data in hub.routes.items():
                chp_add(api, prefix, data["target"], session)
            rate = len(hub.routes) / (time.monotonic() - began)
            extra.setdefault("chp", {})["add_rate"] = rate
            big_measure(proxy, args, extra["chp"])
        finally:
            proxy.close()
    for workers in (1, 2):
        if f"ours{workers}" not in only:
            continue
        print(f"ours ({workers} workers) with {args.routes:,} routes ...", flush=True)
        proxy = start_router(tmp, hub.url, workers)
        try:
            big_measure(proxy, args, extra.setdefault(f"ours{workers}", {}))
        finally:
            proxy.close()


def big_measure(proxy: Proxy, args: argparse.Namespace, into: dict[str, float]) -> None:
    requests.get(proxy.url + PATH, timeout=5)
    into["rss_big_idle"] = proxy.rss()
    result = run_wrk(proxy.url + PATH, 32, args.short)
    into["rps_big"] = result.rps
    into["rss_big"] = proxy.rss()


def report_http(proxies: list[Proxy], chp: Proxy | None, direct: list[float]) -> None:
    rows = []
    for proxy in proxies:
        r = proxy.results

        def vs(name: str, r: dict[str, list[float]] = r, me: Proxy = proxy) -> str:
            if chp is None or me is chp or name not in r:
                return ""
            return f" ({ratio(r[name], chp.results[name]):.2f}x)"

        rows.append(
            [
                proxy.label,
                fmt(median(r["rps32"])) + vs("rps32"),
                fmt(median(r["p50"]), 2),
                fmt(median(r["p99"]), 2),
                fmt(median(r["cpu"])) + vs("cpu"),
                fmt(median(r["rps1"])) + vs("rps1"),
                fmt(median(r.get("ws", [])), 3) + vs("ws"),
                fmt(median(r.get("jup", []))) + vs("jup"),
            ]
        )
    if direct:
        rows.append(["direct (jupyter-server)", "", "", "", "", "", "", fmt(median(direct))])
    print("\nProxy, 1 KiB responses (medians; ratios = median of per-round ratios vs CHP)")
    print_table(
        [
            "target",
            "req/s c32",
            "p50 ms",
            "p99 ms",
            "CPU µs/req",
            "req/s c1",
            "WS RTT p50 ms",
            "jupyter /api req/s c8",
        ],
        rows,
    )


def report_memory(
    proxies: list[Proxy], extra: dict[str, dict[str, float]], args: argparse.Namespace
) -> None:
    rows = []
    for proxy in proxies:
        e = extra.get(proxy.key, {})
        rows.append(
            [
                proxy.label,
                fmt(e.get("rss0", float("nan")), 1),
                fmt(e.get("rss_early", float("nan")), 1),
                fmt(e.get("rss_end", float("nan")), 1),
                fmt(e.get("rss_big_idle", float("nan")), 1),
                fmt(e.get("rss_big", float("nan")), 1),
                fmt(e.get("rps_big", float("nan"))),
                fmt(e.get("add_rate", float("nan"))),
            ]
        )
    print(
        f"\nMemory (MiB, all processes of the proxy): one WebSocket session of "
        f"{args.ws_messages:,} x 1 KiB echoes; a fresh proxy with {args.routes:,} routes"
    )
    print_table(
        [
            "target",
            "WS start",
            "WS after 10%",
            "WS end",
            f"{args.routes} routes idle",
            f"{args.routes} routes after load",
            "req/s c32 there",
            "routes added/s",
        ],
        rows,
    )


def report_targets(
    proxies: list[Proxy],
    chp: Proxy | None,
    direct: list[float],
    extra: dict[str, dict[str, float]],
    propagation: dict[str, list[float]] | None,
) -> None:
    by = {p.key: p for p in proxies}
    rows = []

    def check(name: str, value: float, target: str, met: bool) -> None:
        shown = "-" if value != value else f"{value:.2f}"
        rows.append([name, shown, target, "-" if value != value else ("met" if met else "NOT met")])

    nan = float("nan")
    if chp is not None:
        for key in ("ours1", "ours2"):
            if key in by:
                cpu = ratio(by[key].results["cpu"], chp.results["cpu"])
                check(f"CPU/request vs CHP ({by[key].label})", cpu, "<= 3x", cpu <= 3)
        if "ours2" in by:
            rps = ratio(by["ours2"].results["rps32"], chp.results["rps32"])
            check("req/s c32 vs CHP (2 workers)", rps, ">= 0.5x", rps >= 0.5)
        for key in ("ours1", "ours2"):
            if key in by and by[key].results.get("ws"):
                ws = ratio(by[key].results["ws"], chp.results["ws"])
                check(f"WebSocket RTT vs CHP ({by[key].label})", ws, "<= 2x", ws <= 2)
        for key in ("ours1", "ours2"):
            if key in by and by[key].results.get("jup"):
                jup = ratio(by[key].results["jup"], chp.results["jup"])
                check(f"jupyter-server req/s vs CHP ({by[key].label})", jup, ">= 0.9x", jup >= 0.9)
    if propagation:
        for mode, values in propagation.items():
            values_ms = sorted(v * 1000 for v in values)
            p99 = values_ms[min(len(values_ms) - 1, int(len(values_ms) * 0.99))] if values else nan
            check(f"route propagation p99 ms ({mode})", p99, "< 100", p99 < 100)
    for key in ("ours1", "ours2"):
        e = extra.get(key, {})
        if "rss_end" in e:
            growth = e["rss_end"] - e["rss_early"]
            check(
                f"RSS growth over the WS session, MiB ({by[key].label})",
                growth,
                "flat (< 2 MiB)",
                growth < 2,
            )
    print("\nTargets (issue 3)")
    print_table(["figure", "value", "target", "verdict"], rows)


if __name__ == "__main__":
    sys.exit(main())
