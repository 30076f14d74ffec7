"""LocalProcessSpawner's pure parts and the prefork client's plumbing; the
real servers it starts are exercised in test_zygote.py and test_spawn_lifecycle.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from servers.spawners import SpawnError, zygote
from servers.spawners.local import LocalProcessSpawner, Zygotes, ZygoteUnavailable, parse_bytes


def fake_env(root: Path, shebang: str = "#!{root}/bin/python3") -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "lib/python3.11/site-packages").mkdir(parents=True)
    python = root / "bin/python3"
    python.write_text("")
    entry = root / "bin/jupyterhub-singleuser"
    entry.write_text(shebang.format(root=root) + "\nimport sys\n")
    return entry


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 * 1024**2), ("1G", 1024**3), ("1.5Gi", int(1.5 * 1024**3)), ("2048", 2048)],
)
def test_memory_sizes_are_read_like_kubespawner(text, expected):
    assert parse_bytes(text) == expected


def test_missing_entrypoint_is_a_spawn_error_naming_the_environment(tmp_path):
    spawner = LocalProcessSpawner(default_env=str(tmp_path), log_dir=tmp_path / "logs")
    with pytest.raises(SpawnError, match=str(tmp_path)):
        spawner.command(type("Spec", (), {"user_env": ""})())


def test_prefork_uses_the_python_of_a_plain_shebang_only(tmp_path):
    entry = fake_env(tmp_path / "a")
    assert zygote.interpreter(entry) == str(tmp_path / "a/bin/python3")
    for shebang in ("#!/usr/bin/env python3", "#!/bin/sh", "import sys", "#!relative/python"):
        other = fake_env(tmp_path / str(abs(hash(shebang))), shebang)
        assert zygote.interpreter(other) is None


def test_environment_stamp_changes_when_a_package_is_installed(tmp_path):
    entry = fake_env(tmp_path / "env")
    python = str(tmp_path / "env/bin/python3")
    base = {"PATH": "/usr/bin"}
    before = zygote.env_stamp(entry, python, base)
    assert zygote.env_stamp(entry, python, base) == before
    site = tmp_path / "env/lib/python3.11/site-packages"
    (site / "newpkg").mkdir()
    os.utime(site, ns=(1, site.stat().st_mtime_ns + 1_000_000))
    after = zygote.env_stamp(entry, python, base)
    assert after != before
    assert zygote.env_stamp(entry, python, {"PATH": "/bin"}) != after


def test_zygote_files_are_named_per_environment_under_the_run_dir(tmp_path):
    zygotes = Zygotes(tmp_path / "run", tmp_path / "logs")
    key, sock, lock, log = zygotes.paths(tmp_path / "env-a")
    assert sock == tmp_path / "run" / f"zygote-{key}.sock"
    assert lock.parent == sock.parent and log.parent == tmp_path / "logs"
    assert zygotes.paths(tmp_path / "env-b")[0] != key


def test_a_socket_path_too_long_for_sun_path_still_connects(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "zygote-x.sock"
    address, dirfd = zygote._unix_address(path)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address)
    os.close(dirfd)
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            request = json.loads(conn.recv(65536))
            conn.sendall(json.dumps({"echo": request["op"]}).encode() + b"\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert zygote.call(path, {"op": "ping"}, timeout=5) == {"echo": "ping"}
    finally:
        thread.join(5)
        listener.close()


def test_nobody_listening_is_an_os_error_the_spawner_recovers_from(tmp_path):
    with pytest.raises(FileNotFoundError):
        zygote.call(tmp_path / "none.sock", {"op": "ping"}, timeout=1)


def test_environment_whose_zygote_cannot_start_is_execd_without_retrying(tmp_path):
    entry = fake_env(tmp_path / "env", "#!/usr/bin/python3")  # no jupyter_server there
    zygotes = Zygotes(tmp_path / "run", tmp_path / "logs")
    cmd, env = [str(entry)], {"HOME": str(tmp_path), "USER": "u"}
    kwargs = {"cwd": tmp_path, "log": tmp_path / "server.log", "limit": None}
    with pytest.raises(ZygoteUnavailable, match="exited"):
        zygotes.spawn(cmd, {"PATH": "/usr/bin:/bin"}, env, **kwargs)
    assert zygotes.spawn(cmd, {"PATH": "/usr/bin:/bin"}, env, **kwargs) is None


def _own_group(code: str) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    """A process leading its own group, as a server does, and its spawner
    state, once CODE has run up to its "ready" line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc, {"pid": proc.pid, "started": zygote.process_start_time(proc.pid)}


def test_stop_kills_a_server_that_ignores_sigterm_once_the_grace_is_over(tmp_path):
    proc, state = _own_group(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    spawner = LocalProcessSpawner(default_env=str(tmp_path), log_dir=tmp_path)
    spawner.stop(state, grace=0.5)
    assert proc.wait(5) == -signal.SIGKILL
    assert spawner.poll(state) == 0


def test_stop_of_a_server_that_exits_on_sigterm_sends_no_sigkill(tmp_path):
    proc, state = _own_group("import time; print('ready', flush=True); time.sleep(60)")
    spawner = LocalProcessSpawner(default_env=str(tmp_path), log_dir=tmp_path)
    spawner.stop(state, grace=30)
    assert proc.wait(5) == -signal.SIGTERM
    assert spawner.poll(state) == 0
