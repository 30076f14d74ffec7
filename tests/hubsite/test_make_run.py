"""`make run` as the README describes it, on moved ports and a temporary data
dir: the supervisor runs the real Procfile (gunicorn hub, stream server, router,
Celery worker and beat) with the embedded defaults (SQLite, filesystem broker), a real
server is started through the router, crashed processes come back, and Ctrl-C
leaves no process behind, the prefork zygote included."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.hubsite.test_supervisor import Running, alive

ROOT = Path(__file__).resolve().parent.parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def platform_env(
    data: Path, hub_port: int, router_port: int, metrics_port: int, stream_port: int
) -> dict[str, str]:
    """What `make run` sees with every port and the data dir moved (and no
    database or broker URL: the embedded defaults)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUB_", "JUPYTERHUB_", "DJANGO_", "PYTEST"))
    }
    env.update(
        HUB_DATA_DIR=str(data),
        HUB_BIND_URL=f"http://127.0.0.1:{hub_port}",
        HUB_STREAM_URL=f"http://127.0.0.1:{stream_port}",
        HUB_ROUTER_LISTEN=f"127.0.0.1:{router_port}",
        HUB_PUBLIC_URL=f"http://127.0.0.1:{router_port}",
        HUB_ROUTER_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        # what is checked here includes the prefork zygote's lifecycle, and only
        # servers without isolation are forked (isolated ones are exec'd in bubblewrap)
        HUB_LOCAL_ISOLATION="none",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def until(predicate, *, timeout: float, what: str):
    """Poll PREDICATE (never a fixed sleep); an upper bound, not a timing check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ours(data: Path) -> list[str]:
    """Every live process whose command line, environment or directory names DATA."""
    marker = str(data).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            cwd = os.readlink(entry / "cwd").encode()
        except OSError:
            continue
        if marker in cmdline or marker in environ or marker in cwd:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture
def platform(tmp_path):
    data = tmp_path / "data"
    hub_port, router_port, metrics_port, stream_port = (free_port() for _ in range(4))
    env = platform_env(data, hub_port, router_port, metrics_port, stream_port)
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "ensure_admin")
    token = manage(env, "create_token", "admin").strip()
    sup = Running(ROOT / "Procfile", env)
    sup.url = f"http://127.0.0.1:{router_port}"
    sup.hub_url = f"http://127.0.0.1:{hub_port}"
    sup.metrics_url = f"http://127.0.0.1:{metrics_port}"
    sup.token = token
    sup.data = data
    yield sup
    sup.close()
    for line in ours(data):  # a failed test must not leave the platform running
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_make_run_on_moved_ports_survives_crashes_and_ctrl_c_leaves_nothing(platform):
    sup = platform
    api = sup.url + "/hub/api"
    auth = {"Authorization": f"token {sup.token}"}
    pids = {}
    for name in ("hub", "streams", "router", "worker", "beat"):
        pids[name] = int(sup.expect(rf"supervisor \| started {name} \(pid (\d+)\)").group(1))
    until(lambda: requests.get(api, timeout=5).ok, timeout=90, what="the hub through the router")
    # every port moved: the hub on HUB_BIND_URL's, the router's metrics on theirs
    assert requests.get(sup.hub_url + "/hub/api", timeout=5).json()["version"]
    health = until(
        lambda: requests.get(sup.metrics_url + "/health", timeout=5).json(),
        timeout=30,
        what="the router's health",
    )
    assert health["workers_alive"] >= 1

    # the worker dies: it comes back and serves the next start
    os.kill(pids["worker"], signal.SIGKILL)
    sup.expect(rf"worker \(pid {pids['worker']}\) was killed by SIGKILL; restarting it")
    sup.expect(r"supervisor \| worker is back \(pid \d+\)")
    started = requests.post(f"{api}/users/admin/server", headers=auth, timeout=10)
    assert started.status_code == 202, started.text
    # its progress streams from the stream server, through the router, until ready
    with requests.get(
        f"{api}/users/admin/server/progress", headers=auth, stream=True, timeout=120
    ) as progress:
        assert progress.headers["Content-Type"] == "text/event-stream"
        events = [line for line in progress.iter_lines() if line.startswith(b"data: ")]
    assert b'"ready": true' in events[-1], events
    sup.expect(r"streams +\| .*GET /hub/api/users/admin/server/progress")

    def ready():
        user = requests.get(f"{api}/users/admin", headers=auth, timeout=5).json()
        return user["servers"].get("", {}).get("ready")

    until(ready, timeout=120, what="admin's server to be ready")
    lab = requests.get(sup.url + "/user/admin/api", headers=auth, timeout=10)
    assert lab.status_code == 200 and "version" in lab.json()

    # the hub dies: it comes back and answers through the router
    os.kill(pids["hub"], signal.SIGKILL)
    sup.expect(rf"hub \(pid {pids['hub']}\) was killed by SIGKILL; restarting it")
    sup.expect(r"supervisor \| hub is back \(pid \d+\)")
    until(lambda: requests.get(api, timeout=5).ok, timeout=90, what="the restarted hub")

    # stop the server (servers outlive make run by design), then Ctrl-C
    stopped = requests.delete(f"{api}/users/admin/server", headers=auth, timeout=10)
    assert stopped.status_code in (202, 204)
    until(
        lambda: not requests.get(f"{api}/users/admin", headers=auth, timeout=5).json()["servers"],
        timeout=60,
        what="admin's server to stop",
    )
    assert list((sup.data / "run").glob("zygote-*.sock")), "the start used no zygote"
    sup.proc.send_signal(signal.SIGINT)
    sup.expect(r"SIGINT: stopping everything")
    sup.expect(r"stopped 1 zygote\(s\)")
    sup.expect(r"everything stopped")
    assert sup.proc.wait(60) == 0
    assert ours(sup.data) == []

    # quiet logs: no route polls in the hub's access log (the router polled every
    # second all along), no kombu hostname warning, root said once per worker start
    log = sup.all_lines()
    hub_lines = [line for line in log if re.match(r"^\S+ hub +\| ", line)]
    assert any('"GET /hub/api/users/admin' in line for line in hub_lines)  # access log is on
    assert not [line for line in hub_lines if "/progress" in line]  # the streams server's
    assert not [line for line in hub_lines if "/hub/api/routes" in line]
    assert not [line for line in log if "No hostname was supplied" in line]
    assert not [line for line in log if "superuser privileges" in line]
    as_root = [line for line in log if "The worker runs as root" in line]
    assert len(as_root) == (2 if os.geteuid() == 0 else 0)  # the first start and the restart
