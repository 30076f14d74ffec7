"""The sandbox a forked server builds for itself (servers/spawners/namespaces.py),
built for real from isolation.mount_plan: as root (users mode, sandbox mode)
and as an unprivileged hub (through a user namespace), and stopped the way the
spawner stops a server. The zygote path end to end, with a real kernel trying
to reach the hub's data, is tests/servers/test_local_isolation.py."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from servers.spawners import isolation, namespaces
from servers.spawners.zygote import process_start_time
from tests.live import wait_for

PROBE = Path(__file__).parent / "data" / "confined_probe.py"
NOBODY = pwd.getpwnam("nobody")
NO_CAPABILITIES = "0000000000000000"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds sandboxes as root and nobody")


@dataclass
class Place:
    """A data dir with a secret beside alice's home, everything the probe
    runs from readable by nobody (pytest's own tmp dirs are root's, 0700)."""

    root: Path
    data: Path
    home: Path
    marker: str

    def plan(self) -> list[list]:
        confinement = isolation.Confinement(data_dir=self.data, home=self.home)
        return [list(step) for step in isolation.mount_plan(confinement)]


@pytest.fixture
def place() -> Iterator[Place]:
    root = Path(tempfile.mkdtemp(prefix="confine-"))
    os.chmod(root, 0o755)
    data, marker = root / "data", f"probe-{uuid.uuid4().hex}"
    home = data / "homes" / "alice"
    home.mkdir(parents=True)
    (data / "secret_key").write_text("hub secret")
    shutil.copy(namespaces.__file__, root / "namespaces.py")
    shutil.copy(PROBE, root / "probe.py")
    for path in (root, data, data / "homes", home):
        os.chmod(path, 0o777 if path == home else 0o755)
    Path("/tmp", marker).write_text("host /tmp")
    yield Place(root=root, data=data, home=home, marker=marker)
    Path("/tmp", marker).unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)


def run_probe(
    place: Place,
    *,
    uid: int | None = None,
    as_nobody: bool = False,
    plan: list[list] | None = None,
    linger: bool = False,
) -> tuple[subprocess.Popen[bytes], list[dict]]:
    """Start the probe; returns it and the JSON lines it printed (all of them,
    or, with LINGER, the report and the facts while it keeps running)."""
    config = {"plan": plan or place.plan(), "uid": uid, "gid": uid, "data": str(place.data)}
    config.update(marker=place.marker, linger=linger)
    python = "/usr/bin/python3" if as_nobody else sys.executable  # nobody cannot reach pyenv's
    argv = [python, str(place.root / "probe.py"), str(place.root / "namespaces.py")]
    argv.append(json.dumps(config))
    if as_nobody:
        drop = [f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups"]
        argv = ["setpriv", *drop, *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=place.root)
    if not linger:
        out, err = proc.communicate(timeout=60)
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines, err.decode()
    else:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
    return proc, sorted(lines, key=lambda line: "report" not in line)  # the report first


def assert_confined(facts: dict, place: Place) -> None:
    assert facts["data dir holds"] == ["homes"]  # the secret is not even there
    assert facts["pid"] == 2 and facts["processes"] == [1, 2]  # no hub process to read
    assert facts["CapEff"] == facts["CapPrm"] == facts["CapBnd"] == NO_CAPABILITIES
    assert facts["NoNewPrivs"] == "1"
    assert facts["tmp writable"] and facts["host tmp hidden"]
    assert facts["terminal"].startswith("/dev/pts/")  # jupyter's terminals work
    assert facts["own /proc entry"]


def test_sandbox_mode_server_sees_only_its_home_and_its_own_processes(place):
    proc, (report, facts) = run_probe(place)
    assert report["report"] is None
    assert_confined(facts, place)
    assert facts["uid"] == 0
    assert (place.data / "secret_key").read_text() == "hub secret"  # the host's view is intact
    assert proc.returncode == 0


def test_users_mode_server_runs_as_its_account_with_no_groups(place):
    _proc, (report, facts) = run_probe(place, uid=NOBODY.pw_uid)
    assert report["report"] is None
    assert_confined(facts, place)
    assert (facts["uid"], facts["gid"], facts["groups"]) == (NOBODY.pw_uid, NOBODY.pw_uid, [])


def test_an_unprivileged_hub_confines_through_a_user_namespace(place):
    _proc, (report, facts) = run_probe(place, as_nobody=True)
    assert report["report"] is None
    assert_confined(facts, place)
    assert facts["uid"] == NOBODY.pw_uid  # mapped to itself: files keep their owners


def test_a_sandbox_that_cannot_be_built_is_reported_and_nothing_runs(place):
    plan = [*place.plan(), ["ro-bind", str(place.root / "env"), "/nonexistent/env", 0o755]]
    proc, lines = run_probe(place, plan=plan)
    assert len(lines) == 1  # the report, and no server ever said anything
    assert "cannot confine the server" in lines[0]["report"]
    assert "/nonexistent/env" in lines[0]["report"]
    assert proc.returncode == 127


def marked_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if f"PROBE_MARKER={marker}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopping_the_group_ends_the_server_and_everything_it_started(place, sig):
    """What the spawner's stop does (the group's SIGTERM, then SIGKILL): the
    monitor, whose pid is the recorded one, exits only after the server, and
    a process the server started (as a kernel) does not outlive it."""
    proc, (report, _facts) = run_probe(place, uid=NOBODY.pw_uid, linger=True)
    assert report["report"] is None and report["leader"] == proc.pid
    wait_for(lambda: marked_processes(place.marker), timeout=10, what="the server's child")
    os.killpg(proc.pid, sig)
    proc.wait(timeout=30)
    expected = 0 if sig == signal.SIGTERM else -signal.SIGKILL  # the server's own exit status
    assert proc.returncode == expected
    wait_for(lambda: not marked_processes(place.marker), timeout=10, what="the child to go")
    assert process_start_time(proc.pid) is None
