"""Celery workers as real OS processes, so a test can SIGKILL or SIGTERM one
(the in-process `celery_live_worker` fixture cannot be killed), and the audit
every fault test ends with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from servers.models import Server
from servers.spawners import get_spawner
from tests.live import ROOT, wait_for

# settings a worker process must share with the test (set by fixtures)
SHARED = (
    "HUB_API_URL",
    "HUB_PUBLIC_URL",
    "HUB_START_TIMEOUT",
    "HUB_STOP_GRACE",
    "HUB_SPAWN_LEASE",
    "HUB_HOMES_DIR",
    "HUB_LOCAL_PREFORK",
    "HUB_CULL_TIMEOUT",
    "HUB_CULL_EVERY",
    "HUB_RECONCILE_EVERY",
)


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 30) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()


def process_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a hub or worker process of this test: its database,
    data dir and the settings the test changed (SHARED)."""
    overrides = {
        k: str(getattr(settings, k)) if k == "HUB_HOMES_DIR" else getattr(settings, k)
        for k in SHARED
    }
    return {
        **os.environ,
        **(env or {}),
        "DJANGO_SETTINGS_MODULE": "tests.scheduler.worker_settings",
        "HUB_DATA_DIR": str(settings.HUB_DATA_DIR),
        "HUB_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "HUB_TEST_OVERRIDES": json.dumps(overrides),
    }


@dataclass
class HubProcess:
    """The hub under gunicorn, as `make run` starts it, on a fixed port."""

    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [str(Path(sys.executable).parent / "gunicorn"), "hubsite.wsgi"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--worker-class", "gthread"]
        command += ["--workers", "2", "--threads", "8", "--timeout", "0"]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def answers() -> bool:
            try:
                return requests.get(f"{self.url}/hub/api", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout=60, what="the hub to answer")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_worker(
    name: str,
    *,
    concurrency: int = 4,
    env: dict[str, str] | None = None,
    full_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """`celery worker` in its own session on the test's database (and the
    broker ENV names: HUB_REDIS_URL, "" for the filesystem one), or with
    exactly FULL_ENV (a platform of its own); returns once it consumes."""
    env = full_env if full_env is not None else process_env(env)
    command = [sys.executable, "-m", "celery", "-A", "hubsite", "worker", "-P", "threads"]
    command += ["-c", str(concurrency), "-n", f"{name}@%h", "-l", "INFO"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    worker = WorkerProcess(name=name, proc=proc)
    ready = threading.Event()

    def drain() -> None:
        for line in proc.stderr:
            worker.lines.append(line)
            if " ready." in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(90) or proc.poll() is not None:
        worker.kill()
        raise AssertionError("worker did not start:\n" + "".join(worker.lines[-30:]))
    return worker


@pytest.fixture
def worker_processes(live_hub) -> Iterator[list[WorkerProcess]]:
    """Workers a test starts with start_worker(); all stopped afterwards, and
    every server process left behind killed."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()
        worker.wait_exit()
        # shown by pytest only when the test failed: what the worker said last
        print(f"--- worker {worker.name}, last lines ---\n" + "".join(worker.lines[-80:]))
    spawner = get_spawner()
    for running in spawner.list_running():
        spawner.stop(running.state, grace=1)


def audit() -> dict[str, int]:
    """The reconciliation audit (reliability.md §5.5): every accepted request
    reached a final state, no process the database does not account for, no
    duplicate server, database and spawner agree on what runs. Returns the
    counts, asserts they are clean."""
    spawner = get_spawner()
    running = spawner.list_running()
    servers = list(Server.objects.select_related("user"))
    pending = [s for s in servers if s.state in (Server.State.STARTING, Server.State.STOPPING)]
    by_key: dict[tuple[str, str], list] = {}
    for proc in running:
        by_key.setdefault((proc.username, proc.server_name), []).append(proc)
    live = {(s.user.username, s.name): s for s in servers if s.state == Server.State.RUNNING}
    orphans = [p for key, procs in by_key.items() if key not in live for p in procs]
    duplicates = [key for key, procs in by_key.items() if len(procs) > 1]
    dead = [s for key, s in live.items() if spawner.poll(s.spawner_state) is not None]
    unlisted = [s for key, s in live.items() if key not in by_key]
    counts = {
        "pending": len(pending),
        "orphans": len(orphans),
        "duplicates": len(duplicates),
        "dead_running": len(dead),
        "running_unlisted": len(unlisted),
    }
    assert counts == dict.fromkeys(counts, 0), (counts, orphans, duplicates, pending)
    return counts


def wait_final(server: Server, *, timeout: float) -> Server:
    final = (Server.State.RUNNING, Server.State.FAILED, Server.State.STOPPED)
    wait_for(
        lambda: Server.objects.get(pk=server.pk).state in final,
        timeout=timeout,
        what=f"{server} to reach a final state",
    )
    server.refresh_from_db()
    return server


@dataclass
class RedisServer:
    url: str
    port: int
    proc: subprocess.Popen | None = None
    args: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(self.answers, timeout=20, what="redis-server to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free port (never the shared one
    at 6379: stopping it is part of some tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--dir", str(tmp_path), "--maxmemory-policy", "noeviction"]
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", port=port, args=args)
    server.start()
    yield server
    server.stop()
