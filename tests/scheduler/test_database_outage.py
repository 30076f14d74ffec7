"""F8: PostgreSQL down for a minute, on a cluster of the test's own (initdb
on a free port; the shared one at 5432 is never stopped). The hub, a worker
and the router run as their own processes on it, as `make run` starts them:
the hub answers 503 (JSON on the API, a page elsewhere, never a traceback),
the router keeps serving the running server, and all is clean after."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from servers.spawners.local import LocalProcessSpawner
from tests.live import ROOT, launch_router, wait_for
from tests.scheduler.processes import HubProcess, start_worker

pytestmark = pytest.mark.e2e


def pg_tool(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    assert found[-1], f"PostgreSQL's {name} is not installed"
    return found[-1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Postgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/hub"

    def _as_postgres(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1"
        log = str(self.data.parent / "pg.log")
        self._as_postgres(
            pg_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres(pg_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    pg = Postgres(data=root / "data", port=free_port())
    pg._as_postgres(pg_tool("initdb"), "-D", str(pg.data), "-A", "trust", "-U", "postgres")
    pg.start()
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(pg.port),
            "-U",
            "postgres",
            "-qc",
            "CREATE DATABASE hub",
        ],
        check=True,
        capture_output=True,
    )
    yield pg
    with contextlib.suppress(subprocess.CalledProcessError):
        pg.stop()
    shutil.rmtree(root, ignore_errors=True)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def test_postgres_down_for_a_minute(own_postgres, tmp_path):
    data = tmp_path / "data"
    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hubsite.settings",
        "HUB_DATABASE_URL": own_postgres.url,
        "HUB_DATA_DIR": str(data),
        "HUB_REDIS_URL": "",
        "HUB_CONNECT_URL": hub_url,
        "HUB_PUBLIC_URL": hub_url,
        "HUB_RECONCILE_EVERY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(data / "metrics"),
    }
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "shell", "-c", "from accounts.services import create_user; create_user('alice')")
    token = manage(env, "create_token", "alice").splitlines()[-1]
    headers = {"Authorization": f"token {token}"}
    hub = HubProcess(port=hub_port, env=env)
    hub.start()
    worker = start_worker("pg", full_env=env)
    router = launch_router(hub.url, (data / "router_token").read_text().strip(), hub_wakes=True)
    spawner = LocalProcessSpawner(default_env="", log_dir=data / "logs", run_dir=data / "run")
    try:
        assert (
            requests.post(
                f"{hub.url}/hub/api/users/alice/server", headers=headers, timeout=30
            ).status_code
            == 202
        )

        def ready() -> bool:
            model = requests.get(
                f"{hub.url}/hub/api/users/alice", headers=headers, timeout=10
            ).json()
            return bool(model["servers"].get("", {}).get("ready"))

        wait_for(ready, timeout=90, what="alice's server")
        through_router = f"{router.url}/user/alice/api/status"
        assert requests.get(through_router, headers=headers, timeout=10).status_code == 200

        own_postgres.stop()
        down = time.monotonic()
        api = requests.get(f"{hub.url}/hub/api/users/alice", headers=headers, timeout=30)
        page = requests.get(
            f"{hub.url}/hub/home",
            cookies={"jupyterhub-hub-login": "x" * 32},
            timeout=30,
            allow_redirects=False,
        )
        served = [
            requests.get(through_router, headers=headers, timeout=10).status_code for _ in range(10)
        ]
        time.sleep(max(0.0, 60 - (time.monotonic() - down)))  # the outage itself
        own_postgres.start()
        back = time.monotonic()
        wait_for(
            lambda: (
                requests.get(
                    f"{hub.url}/hub/api/users/alice", headers=headers, timeout=10
                ).status_code
                == 200
            ),
            timeout=30,
            what="the hub to answer again",
        )
        recovered = time.monotonic() - back
        assert ready()
        assert requests.get(through_router, headers=headers, timeout=10).status_code == 200
        # audit: one server process, the one the database says runs
        listed = spawner.list_running()
        assert [(r.username, r.server_name) for r in listed] == [("alice", "")]
        assert requests.delete(
            f"{hub.url}/hub/api/users/alice/server", headers=headers, timeout=30
        ).status_code in (202, 204)
        wait_for(lambda: not spawner.list_running(), timeout=30, what="the server to stop")
    finally:
        router.stop()
        worker.kill()
        worker.wait_exit()
        hub.kill()
        for running in spawner.list_running():
            spawner.stop(running.state, grace=1)
    print(
        f"\nPostgreSQL down 60 s: API {api.status_code}, page {page.status_code},"
        f" router {served.count(200)}/10 served; hub answering {recovered:.2f}s after it was back"
    )
    assert api.status_code == 503 and api.json()["status"] == 503
    assert "database is unavailable" in api.json()["message"]
    assert page.status_code == 503 and "Temporarily unavailable" in page.text
    assert "Traceback" not in page.text + api.text
    assert served == [200] * 10
