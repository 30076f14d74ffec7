"""hubsite.supervisor, the process supervisor `make run` uses: the pure parts
as tables, and the real supervisor running real child processes (python
sleepers standing in for the hub's processes; tests/hubsite/test_make_run.py
runs the real Procfile)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from hubsite import supervisor as sv

ROOT = Path(__file__).resolve().parent.parent.parent
SLEEPER = f"{sys.executable} -c 'import time; print(\"up\", flush=True); time.sleep(600)'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hub: gunicorn x\nrouter: python -m r\n", {"hub": "gunicorn x", "router": "python -m r"}),
        ("# comment\n\nbeat:   celery beat  \n", {"beat": "celery beat"}),
        ("a: echo ${X:-1}: ok\n", {"a": "echo ${X:-1}: ok"}),
    ],
)
def test_procfile_lines_are_name_colon_command(text, expected):
    assert sv.parse_procfile(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just a command\n", "line 1: expected 'name: command'"),
        ("a: x\na: y\n", "line 2: 'a' is defined twice"),
        ("# nothing\n", "no processes defined"),
    ],
)
def test_a_bad_procfile_is_refused_with_the_line(text, message):
    with pytest.raises(sv.ProcfileError, match=re.escape(message)):
        sv.parse_procfile(text)


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "exited with code 0"), (3, "exited with code 3"), (-9, "was killed by SIGKILL")],
)
def test_the_log_says_how_a_child_ended(code, text):
    assert sv.describe_exit(code) == text


@pytest.mark.parametrize(
    ("previous", "ran_for", "delay"),
    [(0, 1, 0.5), (0.5, 1, 1.0), (4, 1, 8), (8, 1, 8), (8, 60, 0.5)],
)
def test_restart_backoff_doubles_only_while_it_keeps_failing_at_start(previous, ran_for, delay):
    assert sv.next_delay(previous, ran_for) == delay


class Running:
    """`python -m hubsite.supervisor --procfile PROCFILE`, its output lines queued."""

    def __init__(self, procfile: Path, env: dict[str, str], names: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hubsite.supervisor", "--procfile", str(procfile), *names],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.used: set[int] = set()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """A line matching PATTERN that no earlier expect matched, among those
        read so far or the next ones: the children's output and the
        supervisor's lines interleave in any order. TIMEOUT bounds the wait;
        it is not a timing check."""
        for index, line in enumerate(self.seen):
            match = re.search(pattern, line)
            if match and index not in self.used:
                self.used.add(index)
                return match
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                seen = "\n".join(self.seen)
                raise AssertionError(f"no line matching {pattern!r} in:\n{seen}") from None
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                self.used.add(len(self.seen) - 1)
                return match

    def all_lines(self) -> list[str]:
        """Every line so far, once the supervisor has exited (its output is complete)."""
        self.proc.wait(60)
        self.reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)


@pytest.fixture
def running(tmp_path):
    started: list[Running] = []

    def run(procfile: str) -> Running:
        (tmp_path / "Procfile").write_text(procfile)
        env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
        started.append(Running(tmp_path / "Procfile", env))
        return started[-1]

    yield run
    for each in started:
        each.close()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_killed_child_is_logged_and_comes_back(running):
    sup = running(f"a: {SLEEPER}\nb: {SLEEPER}\n")
    pid_a = int(sup.expect(r"started a \(pid (\d+)\)").group(1))
    pid_b = int(sup.expect(r"started b \(pid (\d+)\)").group(1))
    os.kill(pid_a, signal.SIGKILL)
    sup.expect(rf"supervisor \| a \(pid {pid_a}\) was killed by SIGKILL; restarting it in 0.5s")
    new_a = int(sup.expect(r"supervisor \| a is back \(pid (\d+)\)").group(1))
    sup.expect(r"^\S+ a +\| up$")
    assert new_a != pid_a and alive(new_a)
    assert alive(pid_b)  # the others were left alone


def test_a_crashed_childs_orphans_are_killed_before_it_restarts(running):
    orphan_maker = (
        f"{sys.executable} -c 'import subprocess, time; "
        'p = subprocess.Popen(["sleep", "600"]); '
        'print("orphan", p.pid, flush=True); time.sleep(600)\''
    )
    sup = running(f"master: {orphan_maker}\n")
    pid = int(sup.expect(r"started master \(pid (\d+)\)").group(1))
    orphan = int(sup.expect(r"\| orphan (\d+)").group(1))
    os.kill(pid, signal.SIGKILL)
    sup.expect(r"master is back")
    assert not alive(orphan)


def test_sigint_stops_every_child_and_their_children(running):
    sup = running(f"a: {SLEEPER}\nb: sh -c 'sleep 600 & wait'\n")
    pids = [int(sup.expect(rf"started {n} \(pid (\d+)\)").group(1)) for n in "ab"]
    sup.expect(r"\| up")
    sup.proc.send_signal(signal.SIGINT)
    sup.expect(r"SIGINT: stopping everything")
    sup.expect(r"everything stopped")
    assert sup.proc.wait(30) == 0
    assert not any(alive(pid) for pid in pids)
    # nothing of their process groups is left either (b's backgrounded sleep)
    assert [sv.group_members(pid) for pid in pids] == [[], []]


def test_a_child_that_keeps_failing_at_start_stops_everything(running):
    sup = running(f"broken: sh -c 'echo cannot bind; exit 3'\nfine: {SLEEPER}\n")
    fine = int(sup.expect(r"started fine \(pid (\d+)\)").group(1))
    sup.expect(r"broken \(pid \d+\) exited with code 3; restarting it in 0.5s")
    sup.expect(r"broken failed 5 times within 10s of starting: stopping everything", timeout=60)
    assert sup.proc.wait(30) == 1
    assert not alive(fine)


def test_a_missing_procfile_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hubsite.supervisor", "--procfile", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "nope" in out.stderr and "No such file" in out.stderr


def test_only_the_named_entries_run(tmp_path):
    (tmp_path / "Procfile").write_text(f"a: {SLEEPER}\nb: {SLEEPER}\n")
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "hubsite.supervisor", "--procfile", str(tmp_path / "Procfile")]
    refused = subprocess.run([*command, "c"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "defines no c" in refused.stderr
    sup = Running(tmp_path / "Procfile", env, names=["b"])
    try:
        sup.expect(r"started b \(pid \d+\)")
        sup.expect(r"\| up")
        sup.proc.send_signal(signal.SIGINT)
        sup.expect(r"everything stopped")
        assert not any("started a" in line for line in sup.seen)
    finally:
        sup.close()


def test_a_new_run_starts_without_the_metric_files_of_the_last(tmp_path):
    """prometheus-client's multiprocess files of a previous run's processes
    are summed by every scrape until removed (hubsite.supervisor.clear_metric_files)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    count_a_cull = (
        "from prometheus_client import Counter;"
        " Counter('hub_culls', 'culls', ['kind']).labels(kind='server').inc()"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two processes of the last run
        subprocess.run([sys.executable, "-c", count_a_cull], env=env, check=True)
    (tmp_path / "notes.txt").write_text("not a metric file")

    def culls_scraped() -> str:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))
        return generate_latest(registry).decode()

    assert 'hub_culls_total{kind="server"} 2.0' in culls_scraped()
    assert sv.clear_metric_files(tmp_path) == 2
    assert "hub_culls_total" not in culls_scraped()
    assert (tmp_path / "notes.txt").exists()
