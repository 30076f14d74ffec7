"""Which processes are ours (LocalProcessSpawner.list_running): every server
records itself in the run dir from inside its own process, so none runs
unrecorded, whether exec'd or forked from a zygote.

The exec'd cases use a stand-in user environment whose `jupyterhub-singleuser`
is a sleeping python script (a real process; it just serves nothing): what is
tested is the record, not Jupyter. The forked case runs the real server."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from servers.models import Server
from servers.spawners import SpawnSpec, get_spawner
from servers.spawners.local import LocalProcessSpawner
from tests.live import stop_and_wait, wait_for


def sleeper_env(root: Path) -> Path:
    """A user environment whose server is `sleep` in python (a stand-in)."""
    (root / "bin").mkdir(parents=True)
    entry = root / "bin/jupyterhub-singleuser"
    entry.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(120)\n")
    entry.chmod(0o755)
    return root


def spec(tmp_path: Path, user: str, attempt: str = "") -> SpawnSpec:
    return SpawnSpec(
        username=user,
        server_name="",
        prefix=f"/user/{user}/",
        api_token="t",
        client_id=f"jupyterhub-user-{user}",
        api_url="http://127.0.0.1:1/hub/api",
        public_url="http://127.0.0.1:1",
        home=tmp_path / "homes" / user,
        attempt=attempt,
    )


@pytest.fixture
def spawner(tmp_path) -> LocalProcessSpawner:
    return LocalProcessSpawner(
        default_env=str(sleeper_env(tmp_path / "env")),
        log_dir=tmp_path / "logs",
        run_dir=tmp_path / "run",
        prefork=False,
    )


def test_an_execd_server_is_listed_with_its_attempt_until_stopped(spawner, tmp_path):
    started = spawner.start(spec(tmp_path, "alice", attempt="a1"), lambda *_: None)
    running = wait_for(spawner.list_running, timeout=10, what="the record")
    assert [(r.username, r.server_name, r.attempt) for r in running] == [("alice", "", "a1")]
    assert running[0].state["pid"] == started.state["pid"]
    assert spawner.poll(running[0].state) is None
    spawner.stop(running[0].state, grace=5)
    assert spawner.list_running() == []
    assert list((tmp_path / "run/servers").iterdir()) == []


def test_a_server_that_died_drops_out_of_the_list(spawner, tmp_path):
    started = spawner.start(spec(tmp_path, "bob"), lambda *_: None)
    wait_for(spawner.list_running, timeout=10, what="the record")
    os.killpg(started.state["pid"], signal.SIGKILL)
    wait_for(lambda: spawner.poll(started.state) is not None, timeout=10, what="the exit")
    assert spawner.list_running() == []


def test_records_that_are_not_whole_or_not_ours_are_ignored(spawner, tmp_path):
    records = tmp_path / "run/servers"
    records.mkdir(parents=True)
    (records / "half.json").write_text('{"pid": ')
    (records / "x.json").write_text('{"pid": 1, "started": "not-init-start-time"}')
    assert spawner.list_running() == []


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_forked_server_records_itself_too(alice, start_server, settings):
    settings.HUB_LOCAL_PREFORK = True
    settings.HUB_LOCAL_ISOLATION = "none"  # isolated servers are exec'd, never forked
    server = start_server(alice)
    listed = [r for r in get_spawner().list_running() if r.username == "alice"]
    assert [r.state["pid"] for r in listed] == [server.spawner_state["pid"]]
    assert server.spawner_state["forked"] is True
    stop_and_wait(server)
    assert not [r for r in get_spawner().list_running() if r.username == "alice"]
    assert Server.objects.get(pk=server.pk).state == Server.State.STOPPED
