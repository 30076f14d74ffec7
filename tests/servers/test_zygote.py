"""Prefork: servers forked from a zygote that has the server's modules imported.

Real processes throughout: the hub (live server, for the single-user server's
start-up version check), a Celery worker, the zygote and jupyter servers. What
matters most is that a forked server is the same as an exec'd one for its
user: HOME, runtime files, lab settings and workspaces, trash, the process
group that stop signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

from servers.models import Server
from servers.spawners import get_spawner, zygote
from servers.spawners.local import LocalProcessSpawner, Zygotes, process_start_time
from tests.factories import ProfileFactory
from tests.live import stop_and_wait, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENV_DIR = Path(settings.HUB_DEFAULT_USER_ENV)


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, settings) -> Iterator[Path]:
    """A short data dir of its own (unix socket paths) and every zygote
    started under it stopped afterwards."""
    data = Path(tmp_path_factory.mktemp("zyg", numbered=True))
    settings.HUB_DATA_DIR = data
    settings.HUB_HOMES_DIR = data / "homes"
    settings.HUB_LOCAL_PREFORK = True
    settings.HUB_LOCAL_ISOLATION = "none"  # isolated servers are exec'd in bubblewrap
    yield data
    Zygotes(data / "run", data / "logs").stop_all()


def zygote_paths(data: Path) -> tuple[str, Path, Path, Path]:
    return Zygotes(data / "run", data / "logs").paths(ENV_DIR)


def zygote_pid(data: Path) -> int:
    _key, sock, _lock, _log = zygote_paths(data)
    return int(zygote.call(sock, {"op": "ping"}, timeout=10)["pid"])


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def server_env(pid: int) -> dict[str, str]:
    """The environment an exec'd process started with (a forked one shows the
    zygote's: it replaced os.environ after the fork)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def api(server: Server, token: str, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(
        method,
        f"{server.url}{server.prefix}{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kwargs,
    )
    assert response.status_code < 400, response.text
    return response


def test_server_is_forked_by_the_zygote_and_runs_as_its_user(
    alice, token_for, start_server, isolated_data_dir
):
    server = start_server(alice)
    pid = server.spawner_state["pid"]
    assert server.spawner_state.get("forked") is True
    assert parent_pid(pid) == zygote_pid(isolated_data_dir)
    home = Path(settings.HUB_HOMES_DIR) / "alice"
    assert os.readlink(f"/proc/{pid}/cwd") == str(home)
    assert os.getpgid(pid) == pid  # its own session: stop signals the group

    token = token_for(alice)
    api(server, token, "PUT", "api/contents/hello.txt", json={"type": "file", "format": "text",
        "content": "hi"})  # fmt: skip
    assert (home / "hello.txt").read_text() == "hi"
    runtime = home / ".local/share/jupyter/runtime"
    assert (runtime / f"jpserver-{pid}.json").exists()
    assert (runtime / "jupyter_cookie_secret").exists()


def test_each_users_lab_state_lands_in_their_own_home(
    alice, bob, token_for, start_server, isolated_data_dir
):
    servers = {user.username: (user, start_server(user)) for user in (alice, bob)}
    for name, (user, server) in servers.items():
        home = Path(settings.HUB_HOMES_DIR) / name
        token = token_for(user)
        # JupyterLab's settings and workspace directories are class defaults
        # computed from HOME at import time: the zygote must not leak its own
        api(server, token, "PUT", "lab/api/workspaces/mine",
            json={"data": {}, "metadata": {"id": "mine"}})  # fmt: skip
        assert list((home / ".jupyter/lab/workspaces").glob("mine-*.jupyterlab-workspace"))
        api(server, token, "PUT", "lab/api/settings/@jupyterlab/apputils-extension:themes",
            json={"raw": json.dumps({"theme": "JupyterLab Dark"})})  # fmt: skip
        themes = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
        assert "Dark" in (themes / "themes.jupyterlab-settings").read_text()
        api(server, token, "PUT", f"api/contents/{name}.txt",
            json={"type": "file", "format": "text", "content": name})  # fmt: skip
        assert (home / f"{name}.txt").read_text() == name
    key = zygote_paths(isolated_data_dir)[0]
    assert not Path(zygote.sentinels(key, isolated_data_dir / "run")["HOME"]).exists()
    assert not list((Path(settings.HUB_HOMES_DIR) / "alice").rglob("bob*"))


def test_stop_kills_the_forked_server(alice, start_server):
    server = start_server(alice)
    state = server.spawner_state
    stop_and_wait(server, by="alice")
    assert get_spawner().poll(state) == 0
    assert process_start_time(state["pid"]) is None


def test_killed_zygote_is_replaced_on_the_next_start(alice, bob, start_server, isolated_data_dir):
    first = start_server(alice)
    old = zygote_pid(isolated_data_dir)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: process_start_time(old) is None, timeout=10, what="the zygote to die")
    assert get_spawner().poll(first.spawner_state) is None  # its servers live on
    second = start_server(bob)
    assert second.spawner_state.get("forked") is True
    assert zygote_pid(isolated_data_dir) != old


def test_stale_socket_file_gets_a_new_zygote(alice, start_server, isolated_data_dir):
    _key, sock, _lock, _log = zygote_paths(isolated_data_dir)
    sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(sock))  # the file stays, nobody listens: connect is refused
    server = start_server(alice)
    assert server.spawner_state.get("forked") is True


def test_zygote_answering_garbage_falls_back_to_exec(alice, start_server, isolated_data_dir):
    _key, sock, _lock, _log = zygote_paths(isolated_data_dir)
    sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    impostor = socket.socket(socket.AF_UNIX)
    impostor.bind(str(sock))
    impostor.listen()

    def answer_garbage() -> None:
        while True:
            try:
                conn, _ = impostor.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"not json\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        server = start_server(alice)
    finally:
        impostor.close()
    assert "forked" not in server.spawner_state
    assert parent_pid(server.spawner_state["pid"]) == os.getpid()  # exec'd by the worker


def test_start_with_an_import_time_variable_of_its_own_is_execd(alice, start_server):
    ProfileFactory(slug="slow-kernels", default=True, environment={"KERNEL_LAUNCH_TIMEOUT": "77"})
    server = start_server(alice)
    assert "forked" not in server.spawner_state
    assert server_env(server.spawner_state["pid"])["KERNEL_LAUNCH_TIMEOUT"] == "77"


def test_prefork_off_execs_every_server(alice, start_server, settings):
    settings.HUB_LOCAL_PREFORK = False
    server = start_server(alice)
    assert "forked" not in server.spawner_state
    assert not list((Path(settings.HUB_DATA_DIR) / "run").glob("*.sock"))


# --- the zygote's own protocol, without a hub ------------------------------------------


@pytest.fixture
def running_zygote(isolated_data_dir) -> tuple[Zygotes, Path, str, dict[str, str]]:
    zygotes = Zygotes(isolated_data_dir / "run", isolated_data_dir / "logs")
    spawner = LocalProcessSpawner(default_env=str(ENV_DIR), log_dir=isolated_data_dir / "logs")
    entrypoint = ENV_DIR / "bin" / "jupyterhub-singleuser"
    python = zygote.interpreter(entrypoint)
    assert python is not None
    base = spawner.base_environment(str(entrypoint), "http://127.0.0.1:9/hub/api")
    stamp = zygote.env_stamp(entrypoint, python, base)
    zygotes.ensure(entrypoint, python, base, stamp)
    return zygotes, entrypoint, stamp, base


def test_zygote_socket_is_private_to_the_hub_user(running_zygote, isolated_data_dir):
    zygotes, *_ = running_zygote
    _key, sock, _lock, _log = zygotes.paths(ENV_DIR)
    assert sock.stat().st_mode & 0o777 == 0o600
    assert sock.parent.stat().st_mode & 0o777 == 0o700


def test_zygote_runs_nothing_but_its_entrypoint(running_zygote, tmp_path):
    zygotes, entrypoint, stamp, base = running_zygote
    _key, sock, _lock, _log = zygotes.paths(ENV_DIR)
    env = {**base, "HOME": str(tmp_path), "USER": "x", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/"}
    header = {"op": "spawn", "stamp": stamp}
    request = {"env": env, "cwd": str(tmp_path), "log": str(tmp_path / "log"), "rlimit_as": None}
    for argv in (["/bin/sh", "-c", "touch pwned"], [str(ENV_DIR / "bin" / "python")], []):
        reply = zygote.call(sock, header, body={**request, "argv": argv}, timeout=10)
        assert "error" in reply
    bad_env = {**request, "argv": [str(entrypoint)], "env": {**env, "PYTHONPATH": "/tmp"}}
    assert "PYTHONPATH" in zygote.call(sock, header, body=bad_env, timeout=10)["error"]
    assert "error" in zygote.call(sock, header, body={"argv": "x"}, timeout=10)
    bad_confine = {**request, "argv": [str(entrypoint)], "confine": {"mounts": "/"}}
    assert "confine" in zygote.call(sock, header, body=bad_confine, timeout=10)["error"]
    assert not (tmp_path / "pwned").exists()


def test_a_spawn_header_carrying_the_request_is_refused(running_zygote, tmp_path):
    """The zygote reads only a spawn's header: what a client puts there would
    stay in the memory every later server inherits."""
    zygotes, entrypoint, stamp, base = running_zygote
    _key, sock, _lock, _log = zygotes.paths(ENV_DIR)
    env = {**base, "HOME": str(tmp_path), "USER": "x", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/"}
    whole = {"op": "spawn", "stamp": stamp, "argv": [str(entrypoint)], "env": env}
    assert zygote.call(sock, whole, timeout=10) == {
        "error": "a spawn's header carries only op and stamp"
    }


def test_zygote_of_a_changed_environment_exits_when_asked_to_spawn(running_zygote):
    zygotes, *_ = running_zygote
    _key, sock, _lock, _log = zygotes.paths(ENV_DIR)
    pid = int(zygote.call(sock, {"op": "ping"}, timeout=10)["pid"])
    reply = zygote.call(sock, {"op": "spawn", "stamp": "changed"}, timeout=10)
    assert reply == {"error": "stale"}
    wait_for(lambda: process_start_time(pid) is None, timeout=10, what="the zygote to exit")


def test_forked_server_can_be_stopped_the_moment_its_pid_is_answered(running_zygote, tmp_path):
    """A stop requested while starting reaches the worker right as the zygote
    answers: by then the child leads its own process group (what stop signals)
    and has written its record, else the SIGTERM is lost and the server runs on."""
    zygotes, entrypoint, _stamp, base = running_zygote
    spawner = LocalProcessSpawner(default_env=str(ENV_DIR), log_dir=tmp_path / "logs")
    env = {**base, "HOME": str(tmp_path), "USER": "x", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/"}
    for n in range(5):
        record = {"path": str(tmp_path / f"{n}.json"), "mark": {"username": "x"}}
        kwargs = {"cwd": tmp_path, "log": tmp_path / f"{n}.log", "limit": None, "record": record}
        forked = zygotes.spawn([str(entrypoint)], base, env, **kwargs)
        assert forked is not None
        pid, started = forked
        leader = os.getpgid(pid)
        recorded = json.loads(Path(record["path"]).read_text())
        spawner.stop({"pid": pid, "started": started, "record": record["path"]}, grace=30)
        assert leader == pid
        assert recorded["pid"] == pid
        assert process_start_time(pid) is None
        assert not Path(record["path"]).exists()


def memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any writable mapping of process PID contains NEEDLE (root
    reads another process's memory through /proc/<pid>/mem)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("rw"):
                continue
            start, end = (int(part, 16) for part in span.split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except OSError:
                continue  # e.g. [vvar]
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_the_zygote_never_holds_a_servers_token(running_zygote, isolated_data_dir, tmp_path):
    """Every later server, another user's too, is a copy of the zygote's
    memory: a token the zygote had read would be theirs to find."""
    zygotes, entrypoint, _stamp, base = running_zygote
    spawner = LocalProcessSpawner(default_env=str(ENV_DIR), log_dir=tmp_path / "logs")
    token = f"token-{uuid.uuid4().hex}"
    env = {**base, "HOME": str(tmp_path), "USER": "x", "JUPYTERHUB_SERVICE_PREFIX": "/user/x/"}
    env["JUPYTERHUB_API_TOKEN"] = token
    record = {"path": str(tmp_path / "server.json"), "mark": {"username": "x"}}
    forked = zygotes.spawn(
        [str(entrypoint)], base, env, cwd=tmp_path, log=tmp_path / "log", limit=None, record=record
    )
    assert forked is not None
    pid, started = forked
    try:
        assert memory_holds(pid, token.encode())  # the server has it: the scan finds it
        assert not memory_holds(zygote_pid(isolated_data_dir), token.encode())
    finally:
        spawner.stop({"pid": pid, "started": started, "record": record["path"]}, grace=10)


EXITING_SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))

def late() -> None:
    time.sleep(0.2)
    (out / "thread").write_text("joined")

threading.Thread(target=late).start()
sys.stdout.write("buffered, not flushed")
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "status", "stderr"),
    [
        ("sys.exit(3)", 3, ""),
        ("", 0, ""),
        ("sys.exit('told why')", 1, "told why"),
        ("raise RuntimeError('boom')", 1, "RuntimeError: boom"),
    ],
)
def test_a_forked_servers_exit_is_what_exec_would_give_without_the_teardown(
    tmp_path, ending, status, stderr
):
    """run_entrypoint skips the interpreter's teardown (it made every stop of a
    forked server wait 1.4-2 s) but keeps what a process that exits shows:
    its status, non-daemon threads joined, atexit handlers run, output flushed."""
    script = tmp_path / "entry.py"
    script.write_text(EXITING_SCRIPT.format(ending=ending))
    code = (  # the user environment's python, which loads zygote.py by its path
        "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[2:]; "
        "import zygote; zygote.run_entrypoint(sys.argv[0])"
    )
    folder = str(Path(zygote.__file__).parent)
    done = subprocess.run(
        [str(ENV_DIR / "bin" / "python"), "-c", code, folder, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == status
    assert done.stdout == "buffered, not flushed"
    assert stderr in done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"
