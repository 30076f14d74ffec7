"""Spawn time, side by side in one run: this platform, JupyterHub 6.1.1 with
SimpleLocalProcessSpawner behind configurable-http-proxy 5.3.0, and the bare
`jupyterhub-singleuser` process.

Spawn time = `POST /hub/api/users/<u>/server` (admin token) until
`GET /user/<u>/api` through the public port (router or CHP) answers 200 with
jupyter-server's JSON. Bare start = process launch until `GET <url>/api`
answers below 500 (the readiness rule both hubs use), polled the same way.
Rounds are interleaved (bare, ours, JupyterHub, rotating the order) so the
ratios come from the same minutes on this shared machine.

    .venv/bin/python bench/spawn.py [--runs 5] [--crowd 10] [--only ours,jupyterhub,bare]

JupyterHub is installed on first use into bench/.work/jh-venv (python3.11 -m
venv + pip) and CHP into bench/.work/chp (npm). Our platform runs from
/work/main's Procfile (hub, router, worker) through hubsite.supervisor, with a fresh data
dir, SQLite and the filesystem broker, or PostgreSQL / Redis when
HUB_DATABASE_URL / HUB_REDIS_URL are set (a throw-away database and Redis db
--redis-db are used, so nothing shared is touched).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from _common import (
    ROOT,
    WORK,
    cmdline,
    cpu_seconds,
    descendants,
    free_port,
    median,
    print_table,
    start_group,
    stop_group,
    tree_cpu_seconds,
    wait_until,
)
from jupyterhub_anchor import CHP_VERSION, JH_VERSION, launch_jupyterhub

USER_VENV = ROOT / ".venv-user"
HUB_VENV = ROOT / ".venv"


Result = tuple[float, float, float]  # spawn s, stop s, control-plane CPU s

# which part of a control plane a process is, from its command line (first match)
ROLES = (
    ("hubsite.supervisor", "supervisor"),
    ("hubsite.streams", "streams"),
    ("gunicorn", "hub"),
    ("routing.router", "router"),
    ("celery", "worker"),
    ("configurable-http-proxy", "proxy"),
    ("jupyterhub", "hub"),
)


def role(pid: int) -> str:
    line = cmdline(pid)
    return next((name for needle, name in ROLES if needle in line), "other")


class BenchError(RuntimeError):
    """Something the report should show instead of a number."""


# --- measuring ------------------------------------------------------------------


@dataclass
class Span:
    start: float  # time.monotonic()
    end: float
    user: str = ""
    wall_start: float = 0.0  # time.time(), to line up with the hub's event timestamps
    wall_end: float = 0.0


def answers_api(session: requests.Session, url: str, headers: dict[str, str]) -> bool:
    """True once URL answers 200 with jupyter-server's {"version": ...}: a hub
    page (pending, login, redirect) must not count as the server answering."""
    try:
        resp = session.get(url, headers=headers, timeout=5, allow_redirects=False)
    except requests.RequestException:
        return False
    if resp.status_code != 200:
        return False
    try:
        return "version" in resp.json()
    except ValueError:
        return False


def at_once(count: int, one: Callable[[int], Span]) -> list[Span]:
    """Run ONE(i) for i < COUNT in threads released together; re-raise the
    first failure after all have finished."""
    barrier = threading.Barrier(count)
    spans: list[Span | None] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            spans[i] = one(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [s for s in spans if s is not None]


def total(spans: Sequence[Span]) -> float:
    return max(s.end for s in spans) - min(s.start for s in spans)


# --- the bare single-user server -------------------------------------------------


class StubHub:
    """Answers every request like a JupyterHub 6.1.1 hub would answer
    `GET /hub/api` (the single-user server's version check at start) and
    accepts activity posts, so the bare start measures the server alone."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = json.dumps({"version": JH_VERSION}).encode()
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-JupyterHub-Version", JH_VERSION)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def singleuser_env(name: str, port: int, hub_api: str, home: Path) -> dict[str, str]:
    """The environment a hub gives `jupyterhub-singleuser` (JupyterHub's get_env)."""
    prefix = f"/user/{name}/"
    token = secrets.token_hex(16)
    scopes = json.dumps([f"access:servers!server={name}/", f"access:servers!user={name}"])
    return {
        "PATH": f"{USER_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "USER": name,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "VIRTUAL_ENV": str(USER_VENV),
        "JUPYTERHUB_API_TOKEN": token,
        "JPY_API_TOKEN": token,
        "JUPYTERHUB_API_URL": hub_api,
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{name}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_USER": name,
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_ACTIVITY_URL": f"{hub_api}/users/{name}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_PUBLIC_HUB_URL": "http://127.0.0.1/hub/",
        "JUPYTERHUB_DEFAULT_URL": "/lab",
    }


class Bare:
    """`jupyterhub-singleuser` from the user venv, launched directly."""

    label = "bare singleuser"

    def __init__(self, tmp: Path, hub_api: str, poll: float) -> None:
        self.tmp = tmp
        self.hub_api = hub_api
        self.poll = poll

    def cpu(self) -> float:
        return float("nan")  # no hub: nothing but the server itself

    def cpu_parts(self) -> dict[str, float]:
        return {}

    def spawn(self, count: int) -> tuple[list[Span], float]:
        procs: list[subprocess.Popen[bytes]] = []
        lock = threading.Lock()

        def one(i: int) -> Span:
            name = f"bare{i}"
            port = free_port()
            home = self.tmp / "homes" / name
            home.mkdir(parents=True, exist_ok=True)
            cmd = [str(USER_VENV / "bin" / "jupyterhub-singleuser")]
            if os.geteuid() == 0:
                cmd.append("--ServerApp.allow_root=True")
            env = singleuser_env(name, port, self.hub_api, home)
            start = time.monotonic()
            proc = start_group(cmd, log=self.tmp / "logs" / f"{name}.log", env=env, cwd=home)
            with lock:
                procs.append(proc)
            session = requests.Session()
            url = f"http://127.0.0.1:{port}/user/{name}/api"

            def ready() -> bool:
                if proc.poll() is not None:
                    raise BenchError(f"bare {name} exited; see {self.tmp / 'logs'}")
                try:
                    return session.get(url, timeout=5).status_code < 500
                except requests.RequestException:
                    return False

            wait_until(ready, timeout=120, what=f"bare {name}", interval=self.poll)
            return Span(start, time.monotonic())

        try:
            spans = at_once(count, one)
        finally:
            began = time.monotonic()
            threads = [threading.Thread(target=stop_group, args=(p,)) for p in procs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stopped = time.monotonic() - began
        return spans, stopped


# --- a hub driven through its REST API -----------------------------------------


@dataclass
class Hub:
    """What both hubs share: the JupyterHub REST API on a public port."""

    label: str = ""
    public: str = ""
    token: str = ""
    poll: float = 0.05
    note: str = ""  # what it runs on, for the report
    manage_env: dict[str, str] | None = None  # ours only: env for manage.py
    log: Path = Path("/dev/null")
    history: list[tuple[int, Span]] = field(default_factory=list)  # (users at once, span)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        try:
            return requests.request(
                method, f"{self.public}/hub/api{path}", headers=self.headers, timeout=60, **kwargs
            )
        except requests.RequestException as exc:
            raise BenchError(
                f"{self.label}: {method} /hub/api{path}: {exc}{self.exited()}"
            ) from None

    def exited(self) -> str:
        """Why the hub stopped answering, when one of its processes exited."""
        for proc in self.procs:
            if proc.poll() is not None:
                return (
                    f"; its process exited ({proc.returncode}), log {self.log}:\n{tail(self.log)}"
                )
        return ""

    def spawn_one(self, user: str) -> Span:
        start, wall_start = time.monotonic(), time.time()
        resp = self.api("POST", f"/users/{user}/server")
        if resp.status_code not in (201, 202):
            raise BenchError(
                f"{self.label}: POST /hub/api/users/{user}/server -> "
                f"{resp.status_code} {resp.text[:300]}"
            )
        session = requests.Session()
        url = f"{self.public}/user/{user}/api"

        def answers() -> bool:
            if any(proc.poll() is not None for proc in self.procs):
                raise BenchError(f"{self.label}: waiting for {url}{self.exited()}")
            return answers_api(session, url, self.headers)

        wait_until(
            answers, timeout=120, what=f"{self.label}: {url} to answer 200", interval=self.poll
        )
        return Span(start, time.monotonic(), user, wall_start, time.time())

    def spawn_watched(self, user: str) -> Span:
        """Start USER's server the way JupyterHub's own spawn page waits for
        one: POST, then follow the server's progress stream to its ready
        event, then one request through the proxy (again every poll until it
        answers 200). Polling the proxy from the POST on would load the hub
        whose POST answers 202 at once (ours) with requests that JupyterHub,
        whose POST answers only once the server is up, never gets."""
        start, wall_start = time.monotonic(), time.time()
        resp = self.api("POST", f"/users/{user}/server")
        if resp.status_code not in (201, 202):
            raise BenchError(f"{self.label}: POST {user} -> {resp.status_code} {resp.text[:300]}")
        url = f"{self.public}/hub/api/users/{user}/server/progress"
        try:
            with requests.get(url, headers=self.headers, stream=True, timeout=600) as stream:
                if stream.status_code != 200:
                    raise BenchError(f"{self.label}: GET {url} -> {stream.status_code}")
                for line in stream.iter_lines():
                    if not line.startswith(b"data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise BenchError(f"{self.label}: {user}: {event.get('message')}")
                    if event.get("ready"):
                        break
                else:
                    raise BenchError(f"{self.label}: {url} ended without a ready event")
        except requests.RequestException as exc:
            raise BenchError(f"{self.label}: GET {url}: {exc}{self.exited()}") from None
        session = requests.Session()
        wait_until(
            lambda: answers_api(session, f"{self.public}/user/{user}/api", self.headers),
            timeout=60,
            what=f"{self.label}: {user} through the proxy after its ready event",
            interval=self.poll,
        )
        return Span(start, time.monotonic(), user, wall_start, time.time())

    def is_stopped(self, user: str) -> bool:
        resp = self.api("GET", f"/users/{user}")
        if resp.status_code != 200:
            raise BenchError(f"{self.label}: GET /hub/api/users/{user} -> {resp.status_code}")
        model = resp.json()
        server = (model.get("servers") or {}).get("")
        if model.get("pending") or model.get("server"):
            return False
        return server is None or not (server.get("ready") or server.get("pending"))

    def stop(self, users: Sequence[str], interval: float = 0.05) -> float:
        """DELETE every server at once and wait until all are stopped (asking
        the hub every INTERVAL s: JupyterHub answers its DELETE once the
        server has stopped, ours at once)."""
        start = time.monotonic()

        def one(i: int) -> Span:
            resp = self.api("DELETE", f"/users/{users[i]}/server")
            if resp.status_code not in (202, 204):
                raise BenchError(f"{self.label}: DELETE {users[i]} -> {resp.status_code}")
            wait_until(
                lambda: self.is_stopped(users[i]),
                timeout=60,
                what=f"{self.label}: {users[i]} to stop",
                interval=interval,
            )
            return Span(start, time.monotonic())

        at_once(len(users), one)
        return time.monotonic() - start

    def spawn(self, count: int, watched: bool = False) -> tuple[list[Span], float]:
        """COUNT servers started at once; returns their spans and the stop time.
        WATCHED: each start waits as a person's browser does (spawn_watched)
        and the stop is checked every 0.25 s, for the CPU rounds."""
        users = user_names(count)
        one = self.spawn_watched if watched else self.spawn_one
        try:
            spans = at_once(count, lambda i: one(users[i]))
            if not watched:
                self.history.extend((count, span) for span in spans)
        finally:
            stopped = self.stop(users, interval=0.25 if watched else 0.05)
        return spans, stopped

    def cpu(self) -> float:
        """CPU seconds used so far by the hub's processes (hub, proxy or router,
        workers), without the single-user servers they started."""
        return sum(tree_cpu_seconds(p.pid, skip=is_singleuser) for p in self.procs)

    def cpu_parts(self) -> dict[str, float]:
        """cpu(), per role (hub, router or proxy, worker, supervisor)."""
        parts: dict[str, float] = {}
        for proc in self.procs:
            for pid in [proc.pid, *descendants(proc.pid, skip=is_singleuser)]:
                with contextlib.suppress(OSError):  # exited between listing and reading
                    parts[role(pid)] = parts.get(role(pid), 0.0) + cpu_seconds(pid)
        return parts

    def close(self) -> None:
        for proc in self.procs:
            stop_group(proc)
        for cleanup in self.cleanups:
            cleanup()


def is_singleuser(pid: int) -> bool:
    return "jupyterhub-singleuser" in cmdline(pid)


def user_names(count: int) -> list[str]:
    return ["solo"] if count == 1 else [f"crowd{i}" for i in range(count)]


def start_jupyterhub(tmp: Path, users: Sequence[str], poll: float) -> Hub:
    tmp.mkdir(parents=True)
    token = secrets.token_hex(32)
    launched = launch_jupyterhub(tmp, token=token)
    proc, public_port = launched.proc, launched.public_port
    hub = Hub(
        label=f"JupyterHub {JH_VERSION}",
        public=f"http://127.0.0.1:{public_port}",
        token=token,
        poll=poll,
        note=f"SimpleLocalProcessSpawner, CHP {CHP_VERSION}, SQLite",
        procs=[proc],
        log=tmp / "jupyterhub.log",
    )
    try:
        wait_for_api(hub, proc, tmp / "jupyterhub.log")
        resp = hub.api("POST", "/users", json={"usernames": list(users)})
        if resp.status_code != 201:
            raise BenchError(f"JupyterHub: creating users -> {resp.status_code} {resp.text[:300]}")
    except BaseException:
        hub.close()
        raise
    return hub


def wait_for_api(hub: Hub, proc: subprocess.Popen[bytes], log: Path) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"{hub.label} exited at start: {tail(log)}")
        try:
            return requests.get(f"{hub.public}/hub/api/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, timeout=90, what=f"{hub.label} API at {hub.public}", interval=0.1)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- this platform --------------------------------------------------------------


SETUP_SCRIPT = """
from accounts import services
admin = services.create_user("bench-admin", admin=True)
for name in {users!r}:
    services.create_user(name)
_, raw = services.issue_token(admin, note="bench/spawn.py")
print("TOKEN=" + raw)
"""


def private_database(url: str) -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database next to the one URL names, and its dropper."""
    import psycopg

    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise BenchError(f"only PostgreSQL is supported for HUB_DATABASE_URL here, not {url}")
    name = f"bench_spawn_{os.getpid()}"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def start_ours(
    tmp: Path,
    users: Sequence[str],
    poll: float,
    redis_db: int,
    extra_env: dict[str, str] | None = None,
) -> Hub:
    """Our Procfile's hub, stream server, router and worker (`make run` without
    beat); EXTRA_ENV (e.g. HUB_SPAWNER) on top."""
    tmp.mkdir(parents=True)
    hub_port, router_port, stream_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if "HUB_LOCAL_PREFORK" in os.environ:  # compare with and without the zygote
        env["HUB_LOCAL_PREFORK"] = os.environ["HUB_LOCAL_PREFORK"]
    env.update(
        HUB_DATA_DIR=str(tmp / "data"),
        HUB_BIND_URL=f"http://127.0.0.1:{hub_port}",
        HUB_PUBLIC_URL=f"http://127.0.0.1:{router_port}",
        HUB_ROUTER_LISTEN=f"127.0.0.1:{router_port}",
        HUB_STREAM_URL=f"http://127.0.0.1:{stream_port}",
        # INFO: start_ours waits for the worker's "ready." line (the Procfile passes
        # HUB_LOG_LEVEL on to Celery)
        HUB_LOG_LEVEL="INFO",
    )
    env.update(extra_env or {})
    cleanups: list[Callable[[], None]] = []
    backends = ["SQLite", "filesystem broker"]
    if os.environ.get("HUB_DATABASE_URL"):
        env["HUB_DATABASE_URL"], drop = private_database(os.environ["HUB_DATABASE_URL"])
        cleanups.append(drop)
        backends[0] = "PostgreSQL"
    if os.environ.get("HUB_REDIS_URL"):
        parts = urlsplit(os.environ["HUB_REDIS_URL"])
        env["HUB_REDIS_URL"] = urlunsplit(parts._replace(path=f"/{redis_db}"))
        backends[1] = f"Redis db {redis_db}"
    hub = Hub(
        label="this platform",
        public=f"http://127.0.0.1:{router_port}",
        poll=poll,
        note=", ".join(backends),
        cleanups=cleanups,
    )
    try:
        manage(env, "migrate", "--verbosity", "0")
        out = manage(env, "shell", "-c", SETUP_SCRIPT.format(users=list(users)))
        hub.manage_env = env
        hub.token = next(l[6:] for l in out.splitlines() if l.startswith("TOKEN="))  # noqa: E741
        log = tmp / "supervisor.log"
        proc = start_group(
            [
                str(HUB_VENV / "bin" / "python"),
                "-m",
                "hubsite.supervisor",
                "--procfile",
                str(ROOT / "Procfile"),
                "hub",
                "streams",
                "router",
                "worker",
            ],
            log=log,
            env=env,
            cwd=ROOT,
        )
        hub.procs.append(proc)
        hub.log = log
        wait_for_api(hub, proc, log)
        wait_until(
            lambda: "ready." in log.read_text(errors="replace") or proc.poll() is not None,
            timeout=60,
            what="the Celery worker",
            interval=0.1,
        )
        wait_until(
            lambda: port_open(stream_port) or proc.poll() is not None,
            timeout=60,
            what="the stream server",
            interval=0.1,
        )
        if proc.poll() is not None:
            raise BenchError(f"the supervisor exited: {tail(log)}")
    except subprocess.CalledProcessError as exc:
        hub.close()
        raise BenchError(f"this platform: {exc.cmd[2:4]} failed: {exc.stderr[-1500:]}") from None
    except BaseException:
        hub.close()
        raise
    return hub


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def manage(env: dict[str, str], *args: str) -> str:
    """Run manage.py ARGS against the bench's platform; its stdout."""
    cmd = [str(HUB_VENV / "bin" / "python"), "manage.py", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


EVENTS_SCRIPT = """
import json
from servers.models import ServerEvent
rows = ServerEvent.objects.filter(server__name="").order_by("id")
print("EVENTS=" + json.dumps([
    [e.server.user.username, e.kind, e.progress, e.created.timestamp()]
    for e in rows.select_related("server__user")
]))
"""
PHASES = (
    ("POST -> start recorded", "request"),
    ("-> worker picked the task", "queue"),
    ("-> process launched", "launch"),
    ("-> hub saw it answer", "boot"),
    ("-> first 200 via router", "route"),
)


def breakdown(hub: Hub) -> dict[int, dict[str, list[float]]]:
    """Where our spawn time went, from the hub's ServerEvents lined up with the
    bench's own clock: per crowd size, per phase, the seconds of every start."""
    out = manage(hub.manage_env or {}, "shell", "-c", EVENTS_SCRIPT)
    rows = json.loads(next(x[7:] for x in out.splitlines() if x.startswith("EVENTS=")))
    starts: dict[str, list[dict[str, float]]] = {}
    for user, kind, progress, created in rows:
        if kind == "start_requested":
            starts.setdefault(user, []).append({"requested": created})
        elif starts.get(user):
            marks = starts[user][-1]
            key = {10: "picked", 50: "launched"}.get(progress) if kind == "progress" else None
            key = "ready" if kind == "ready" else key
            if key and key not in marks:
                marks[key] = created
    found: dict[int, dict[str, list[float]]] = {}
    seen: dict[str, int] = {}
    for count, span in hub.history:
        index = seen[span.user] = seen.get(span.user, -1) + 1
        marks = starts.get(span.user, [])[index] if index < len(starts.get(span.user, [])) else {}
        points = [
            span.wall_start,
            *(marks.get(k) for k in ("requested", "picked", "launched", "ready")),
            span.wall_end,
        ]
        if None in points:
            continue
        phases = found.setdefault(count, {name: [] for _, name in PHASES})
        for (_, name), (a, b) in zip(PHASES, itertools.pairwise(points), strict=True):
            phases[name].append(b - a)
    return found


# --- the run ----------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="1-user rounds (median of these)")
    parser.add_argument("--crowd", type=int, default=10, help="users started at once")
    parser.add_argument("--crowd-runs", type=int, default=1, help="rounds of the crowd start")
    parser.add_argument("--poll", type=float, default=0.05, help="1-user poll interval, s")
    parser.add_argument("--crowd-poll", type=float, default=0.2, help="crowd poll interval, s")
    parser.add_argument("--only", default="bare,ours,jupyterhub", help="systems to run")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis db for our broker")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    return parser.parse_args()


def start_systems(
    names: Sequence[str], tmp: Path, args: argparse.Namespace, stub: StubHub
) -> tuple[dict[str, Bare | Hub], dict[str, str]]:
    users = user_names(1) + user_names(args.crowd)
    systems: dict[str, Bare | Hub] = {}
    errors: dict[str, str] = {}
    for name in names:
        began = time.monotonic()
        try:
            if name == "bare":
                systems[name] = Bare(tmp / "bare", stub.url + "/hub/api", args.poll)
            elif name == "jupyterhub":
                systems[name] = start_jupyterhub(tmp / "jupyterhub", users, args.poll)
            elif name == "ours":
                systems[name] = start_ours(tmp / "ours", users, args.poll, args.redis_db)
            else:
                raise BenchError(f"unknown system {name!r}")
            print(f"{name}: up in {time.monotonic() - began:.1f} s", flush=True)
        except (BenchError, TimeoutError) as exc:
            errors[name] = str(exc)
            print(f"{name}: NOT STARTED: {exc}", flush=True)
    return systems, errors


def measure(
    systems: dict[str, Bare | Hub],
    errors: dict[str, str],
    count: int,
    rounds: int,
    poll: float,
    parts: dict[str, list[dict[str, float]]] | None = None,
    watched: bool = False,
) -> dict[str, list[Result]]:
    """Interleaved rounds (the order rotates); per system and round:
    (spawn s, stop s, control-plane CPU s of the start + stop cycle), and in
    PARTS that CPU per role. WATCHED: hubs only, each start followed as a
    browser does (Hub.spawn_watched)."""
    found: dict[str, list[Result]] = {name: [] for name in systems}
    names = list(systems)
    for r in range(rounds if names else 0):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name in errors or (watched and not isinstance(systems[name], Hub)):
                continue
            system = systems[name]
            system.poll = poll
            parts_before = system.cpu_parts()
            cpu_before = system.cpu()
            try:
                if watched and isinstance(system, Hub):
                    spans, stopped = system.spawn(count, watched=True)
                else:
                    spans, stopped = system.spawn(count)
            except (BenchError, TimeoutError) as exc:
                errors[name] = f"{count} user(s), round {r + 1}: {exc}"
                print(f"{name}: FAILED: {errors[name]}", flush=True)
                continue
            cpu = system.cpu() - cpu_before
            found[name].append((total(spans), stopped, cpu))
            if parts is not None:
                after = system.cpu_parts()
                parts.setdefault(name, []).append(
                    {k: v - parts_before.get(k, 0.0) for k, v in after.items()}
                )
            print(
                f"  round {r + 1}, {count} user(s){' watched' if watched else ''}, {name}:"
                f" {total(spans):.2f} s"
                f" (stop {stopped:.2f} s, control-plane CPU {cpu:.2f} s)",
                flush=True,
            )
    return found


def summary(values: Sequence[float]) -> str:
    values = [v for v in values if v == v]  # nan: not measured
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{median(values):.2f} s [{min(values):.2f}-{max(values):.2f}]"


def report(
    names: Sequence[str],
    labels: dict[str, str],
    one: dict[str, list[Result]],
    watched: dict[str, list[Result]],
    crowd: dict[str, list[Result]],
    args: argparse.Namespace,
    errors: dict[str, str],
) -> None:
    def col(found: dict[str, list[Result]], name: str, idx: int) -> str:
        return (
            summary([v[idx] for v in found.get(name, [])])
            if name not in errors or found.get(name)
            else "failed"
        )

    print()
    print_table(
        ["measure", *[labels[n] for n in names]],
        [
            [
                f"1 user: start -> first 200 (median of {args.runs})",
                *[col(one, n, 0) for n in names],
            ],
            [f"{args.crowd} users at once: all answering 200", *[col(crowd, n, 0) for n in names]],
            ["stop 1 (until stopped)", *[col(one, n, 1) for n in names]],
            [f"stop {args.crowd} at once", *[col(crowd, n, 1) for n in names]],
            [
                "control-plane CPU, 1 user start+stop (client on the progress stream)",
                *[col(watched, n, 2) for n in names],
            ],
            [
                f"  the same, client polling the proxy every {args.poll * 1000:.0f} ms",
                *[col(one, n, 2) for n in names],
            ],
            [
                f"control-plane CPU, {args.crowd} users start+stop",
                *[col(crowd, n, 2) for n in names],
            ],
        ],
    )

    rows = [
        ratio_row("1 user <= 1.15x bare start", one, "ours", "bare", 1.15),
        ratio_row(f"{args.crowd} users <= 0.7x JupyterHub", crowd, "ours", "jupyterhub", 0.7),
        ratio_row(
            "control-plane CPU, 1 user start+stop <= 0.5x JupyterHub",
            watched,
            "ours",
            "jupyterhub",
            0.5,
            index=2,
        ),
        ratio_row(
            "(info) the same, client polling the proxy", one, "ours", "jupyterhub", None, index=2
        ),
        ratio_row("(info) JupyterHub 1 user vs bare", one, "jupyterhub", "bare", None),
        ratio_row(f"(info) {args.crowd} users: ours vs bare", crowd, "ours", "bare", None),
    ]
    print()
    print_table(
        ["target", "medians", "ratio of medians", "per-round ratios, median", "verdict"], rows
    )
    for name, message in errors.items():
        print(f"\n{labels.get(name, name)}: {message}")


def ratio_row(
    label: str,
    found: dict[str, list[Result]],
    a: str,
    b: str,
    limit: float | None,
    index: int = 0,
) -> list[str]:
    """A vs B on the INDEXth figure of each Result (0: spawn time, 2: CPU):
    the verdict is on the ratio of medians; the median of ratios within each
    round (measured minutes apart) shows how steady that is."""
    first = [v[index] for v in found.get(a, [])]
    second = [v[index] for v in found.get(b, [])]
    if not first or not second:
        return [label, "not measured", "-", "-", "NO RESULT" if limit else ""]
    ratio = median(first) / median(second)
    paired = median(x / y for x, y in zip(first, second, strict=False))
    verdict = "" if limit is None else ("PASS" if ratio <= limit else "FAIL")
    measured = f"{median(first):.2f} s vs {median(second):.2f} s"
    return [label, measured, f"{ratio:.2f}x", f"{paired:.2f}x", verdict]


def report_cpu_parts(
    names: Sequence[str], labels: dict[str, str], parts: dict[str, list[dict[str, float]]]
) -> None:
    """Where the control-plane CPU of one start+stop goes, per process role."""
    shown = [n for n in names if parts.get(n)]
    if not shown:
        return
    roles = sorted({r for n in shown for cycle in parts[n] for r in cycle})
    print(
        "\ncontrol-plane CPU of 1 user start+stop (client on the progress stream),"
        " per process role (median, ms):"
    )
    print_table(
        ["role", *[labels[n] for n in shown]],
        [
            [
                r,
                *[
                    f"{median([c.get(r, 0.0) for c in parts[n]]) * 1000:.0f}"
                    if any(r in c for c in parts[n])
                    else "-"
                    for n in shown
                ],
            ]
            for r in roles
        ],
    )


def report_breakdown(found: dict[int, dict[str, list[float]]]) -> None:
    print("\nthis platform, where the time goes (median [max] of each phase, s):")
    counts = sorted(found)
    print_table(
        ["phase", *[f"{c} user(s) at once" for c in counts]],
        [
            [label, *[f"{median(found[c][name]):.3f} [{max(found[c][name]):.3f}]" for c in counts]]
            for label, name in PHASES
        ],
    )


def main() -> int:
    args = parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    WORK.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-spawn-"))
    stub = StubHub()
    systems: dict[str, Bare | Hub] = {}
    try:
        systems, errors = start_systems(names, tmp, args, stub)
        labels = {
            "bare": "bare singleuser",
            "ours": "this platform",
            "jupyterhub": f"JupyterHub {JH_VERSION}",
        }
        parts: dict[str, list[dict[str, float]]] = {}
        one = measure(systems, errors, 1, args.runs, args.poll)
        watched = measure(systems, errors, 1, args.runs, args.poll, parts, watched=True)
        crowd = measure(systems, errors, args.crowd, args.crowd_runs, args.crowd_poll)
        print(f"\nmachine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
        print(
            f"bare singleuser: {USER_VENV}/bin/jupyterhub-singleuser; its hub version check"
            f" answered by a stub hub (http.server, X-JupyterHub-Version: {JH_VERSION})"
        )
        for name, system in systems.items():
            if isinstance(system, Hub):
                print(f"{labels[name]}: {system.note}")
        print(
            f"poll interval: {args.poll * 1000:.0f} ms (1 user), {args.crowd_poll * 1000:.0f} ms"
            f" ({args.crowd} users), same for every system"
        )
        report(names, labels, one, watched, crowd, args, errors)
        report_cpu_parts(names, labels, parts)
        ours = systems.get("ours")
        if isinstance(ours, Hub) and ours.history:
            report_breakdown(breakdown(ours))
    finally:
        for system in systems.values():
            if isinstance(system, Hub):
                system.close()
        stub.close()
        if args.keep:
            print(f"\nlogs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
