"""`make run-ha` (Procfile.ha under the supervisor): two hubs, two stream
servers, two routers sharing one public port, two Celery workers and one beat
on one database and one Redis (a redis-server of the test's own; PostgreSQL
when the run has one, as CI does, else SQLite). The browser journey (sign-up,
approval, spawn, a cell in JupyterLab, stop) passes on it, and passes again
while one hub, one router and one worker are SIGKILLed mid-journey: the
survivors carry it while the supervisor brings the dead back. Each run ends
with an audit: no duplicate server, no orphan process, every start and stop
reached a final state, and the database and the routers agree."""

from __future__ import annotations

import json
import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.browser.test_signup_to_jupyterlab import journey
from tests.conftest import PASSWORD
from tests.hubsite.test_make_run import free_port, manage, ours, platform_env, until
from tests.hubsite.test_supervisor import Running
from tests.scheduler.processes import own_redis  # noqa: F401 - a fixture, used below

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("hub1", "hub2", "streams1", "streams2", "router1", "router2", "worker1", "worker2", "beat")

SETUP = f"""
from accounts.models import User
from servers.models import Profile
admin = User.objects.get(username="admin")
admin.set_password({PASSWORD!r})
admin.save()
Profile.objects.create(slug="standard", display_name="Standard environment", default=True)
"""


@pytest.fixture
def database() -> str:
    """A fresh PostgreSQL database when the run has PostgreSQL, else "" (SQLite)."""
    url = os.environ.get("HUB_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        yield ""
        return
    import psycopg

    name = f"hub_ha_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def ha(tmp_path, database, own_redis):  # noqa: F811 - the fixture imported above
    data = tmp_path / "data"
    hub_port, router_port, metrics_port, stream_port = (free_port() for _ in range(4))
    env = platform_env(data, hub_port, router_port, metrics_port, stream_port)
    env.update(
        HUB_HA_HUB1=f"http://127.0.0.1:{hub_port}",
        HUB_HA_HUB2=f"http://127.0.0.1:{free_port()}",
        HUB_HA_STREAMS1=f"http://127.0.0.1:{stream_port}",
        HUB_HA_STREAMS2=f"http://127.0.0.1:{free_port()}",
        # what make run-ha sets: servers and workers reach the hubs through the routers
        HUB_CONNECT_URL=f"http://127.0.0.1:{router_port}",
        HUB_REDIS_URL=own_redis.url,
        HUB_SIGNUP_OPEN="true",
        HUB_SIGNUP_REQUIRES_APPROVAL="true",
    )
    if database:
        env["HUB_DATABASE_URL"] = database
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "ensure_admin")
    manage(env, "shell", "-c", SETUP)
    sup = Running(ROOT / "Procfile.ha", env)
    sup.url = f"http://127.0.0.1:{router_port}"
    sup.env, sup.data = env, data
    sup.pids = {
        name: int(sup.expect(rf"supervisor \| started {name} \(pid (\d+)\)").group(1))
        for name in NAMES
    }
    until(lambda: requests.get(sup.url + "/hub/api", timeout=5).ok, timeout=90, what="the hubs")
    for name in ("hub1", "hub2"):
        url = env[f"HUB_HA_{name.upper()}"]
        until(lambda url=url: requests.get(url + "/hub/api", timeout=5).ok, timeout=90, what=name)
    yield sup
    sup.close()
    for line in ours(data):  # a failed test must not leave the platform running
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


def audit(sup) -> dict[str, object]:
    """What the database says of every server, and which server processes run."""
    script = (
        "from servers.models import Server\n"
        "import json\n"
        "print(json.dumps([[s.user.username, s.name, s.state] for s in Server.objects.all()]))"
    )
    out = manage(sup.env, "shell", "-c", script).strip().splitlines()[-1]
    servers = json.loads(out)
    return {"servers": servers, "server_processes": server_processes(("first", "second"))}


def server_processes(users: tuple[str, ...]) -> list[int]:
    """Live processes carrying a user server's environment (the spawner
    contract's JUPYTERHUB_USER), whichever way they were started."""
    wanted = [f"JUPYTERHUB_USER={user}".encode() for user in users]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(variable in environ for variable in wanted):
            found.append(int(entry.name))
    return found


def run_journey(sup, username: str, at=lambda step: None) -> None:
    # Playwright's sync API runs an event loop in its thread: the browser gets its own
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(journey, sup.url, username, at).result()
        except BaseException:
            print("\n".join(said(sup)[-400:]))  # what the platform said, for the report
            raise


def said(sup) -> list[str]:
    """The platform's output so far (Running.all_lines waits for its exit)."""
    while not sup.lines.empty():
        sup.seen.append(sup.lines.get())
    return sup.seen


def test_the_journey_on_two_of_everything_and_again_while_one_of_each_is_killed(ha):
    run_journey(ha, "first")
    assert audit(ha) == {"servers": [["first", "", "stopped"]], "server_processes": []}

    killed = []

    def kill(step: str) -> None:
        """SIGKILL one of each: the hub before the spawn, the worker while it
        spawns, the router while JupyterLab talks to the server through it."""
        victim = {"approved": "hub1", "spawning": "worker1", "in-lab": "router1"}[step]
        os.kill(ha.pids[victim], signal.SIGKILL)
        killed.append(victim)

    run_journey(ha, "second", kill)
    assert killed == ["hub1", "worker1", "router1"]
    for victim in killed:
        ha.expect(rf"{victim} \(pid {ha.pids[victim]}\) was killed by SIGKILL; restarting it")
        ha.expect(rf"supervisor \| {victim} is back \(pid \d+\)")
    final = audit(ha)
    assert sorted(final["servers"]) == [["first", "", "stopped"], ["second", "", "stopped"]]
    assert final["server_processes"] == []
    # the routers agree with the database: no route is left for either user, so
    # each router (the kernel spreads new connections over both) sends them to
    # a hub's "not running" page
    token = manage(ha.env, "create_token", "admin").strip()
    for _ in range(8):
        for user in ("first", "second"):
            answer = requests.get(
                f"{ha.url}/user/{user}/api/status",
                headers={"Authorization": f"token {token}"},
                timeout=10,
            )
            assert answer.status_code == 424, (user, answer.status_code, answer.text[:200])
