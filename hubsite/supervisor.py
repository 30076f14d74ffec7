"""`make run`'s process supervisor: runs the Procfile's processes, brings back
one that crashes, and on Ctrl-C (SIGINT) or SIGTERM stops all of them and the
prefork zygotes their spawns started.

Why our own and not honcho, supervisord or circus: honcho stops everything when
one process dies; supervisord and circus restart, but neither knows that the
Celery worker's spawns leave zygotes in their own sessions (servers/spawners/
zygote.py) that a clean stop must end too, and each is one more daemon with its
own config format. This is the router's supervision pattern (one process group
per child, restart with back-off) in the standard library, reading the Procfile
that stays the one list of what `make run` starts.

- Each child runs as `/bin/sh -c "exec COMMAND"` (so `${VAR:-default}` works)
  in its own session; its whole process group is signalled, so gunicorn's and
  the router's workers go with their master.
- A child that exits while we are not stopping is logged with how it ended
  (exit code or signal); its process group is killed (orphaned workers would
  keep the port), and it is started again after a back-off that doubles while
  it keeps dying within RESTART_WINDOW of its start (0.5 s up to 8 s). One that
  dies that fast GIVE_UP times in a row is broken (a taken port, a bad
  setting): everything is stopped and the exit status is 1.
- Stopping: SIGTERM to every group, SIGKILL to what is left after
  STOP_GRACE seconds, then every zygote under
  HUB_DATA_DIR/run. Users' servers keep running (they outlive the hub; the
  next start finds them again).

Output is honcho's: `HH:MM:SS name | line`, and the supervisor's own lines
under the name `supervisor`."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

RESTART_WINDOW = 10.0  # a child that ran longer than this was not failing at start
FIRST_DELAY = 0.5
MAX_DELAY = 8.0
GIVE_UP = 5
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL at stop
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class ProcfileError(ValueError):
    pass


def parse_procfile(text: str) -> dict[str, str]:
    """`name: command` lines, in order; blank lines and `#` comments skipped."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ProcfileError(f"line {number}: expected 'name: command', got {raw!r}")
        name, command = match.groups()
        if name in entries:
            raise ProcfileError(f"line {number}: {name!r} is defined twice")
        entries[name] = command
    if not entries:
        raise ProcfileError("no processes defined")
    return entries


def describe_exit(returncode: int) -> str:
    """How a child ended, for the log: 'exited with code 3', 'was killed by SIGKILL'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def next_delay(previous: float, ran_for: float) -> float:
    """Back-off before a restart: short after a long run, doubling while it keeps
    failing at start."""
    if ran_for >= RESTART_WINDOW or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


@dataclass
class Child:
    name: str
    command: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = 0.0
    fast_failures: int = 0
    restart_at: float | None = None
    pumps: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(
        self, procs: dict[str, str], *, cwd: Path, run_dir: Path, grace: float, out: IO[str]
    ) -> None:
        self.children = [Child(name, command) for name, command in procs.items()]
        self.cwd = cwd
        self.run_dir = run_dir
        self.grace = grace
        self.out = out
        self.width = max(len(c.name) for c in [*self.children, Child("supervisor", "")])
        self.lock = threading.Lock()
        self.stopping = False
        self.failed = False

    # --- output ---------------------------------------------------------------------

    def say(self, name: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self.lock:
            self.out.write(f"{stamp} {name.ljust(self.width)} | {text}\n")
            self.out.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(name, raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    # --- children -------------------------------------------------------------------

    def start(self, child: Child) -> None:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {child.command}"],
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child.proc, child.started_at, child.restart_at = proc, time.monotonic(), None
        assert proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(child.name, proc.stdout), daemon=True)
        pump.start()
        child.pumps.append(pump)

    def reap(self) -> None:
        """Note children that have exited and plan their restart."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            proc, child.proc = child.proc, None
            _kill_group(proc.pid, signal.SIGKILL)  # orphaned workers would keep its port
            _wait_group_gone(proc.pid, timeout=5)
            if self.stopping:
                continue
            ran_for = now - child.started_at
            child.fast_failures = child.fast_failures + 1 if ran_for < RESTART_WINDOW else 0
            child.delay = next_delay(child.delay, ran_for)
            how = describe_exit(proc.returncode)
            if child.fast_failures >= GIVE_UP:
                self.say("supervisor", f"{child.name} (pid {proc.pid}) {how} again")
                self.say(
                    "supervisor",
                    f"{child.name} failed {GIVE_UP} times within {RESTART_WINDOW:.0f}s of "
                    "starting: stopping everything",
                )
                self.failed = True
                return
            self.say(
                "supervisor",
                f"{child.name} (pid {proc.pid}) {how}; restarting it in {child.delay:g}s",
            )
            child.restart_at = now + child.delay

    def restart_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None and child.restart_at is not None and child.restart_at <= now:
                self.start(child)
                assert child.proc is not None
                self.say("supervisor", f"{child.name} is back (pid {child.proc.pid})")

    def next_timeout(self) -> float | None:
        due = [c.restart_at for c in self.children if c.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    # --- the loop -------------------------------------------------------------------

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # the wakeup fd carries the number
        try:
            for child in self.children:
                self.start(child)
                assert child.proc is not None
                self.say("supervisor", f"started {child.name} (pid {child.proc.pid})")
            while not self.failed:
                select.select([wake_r], [], [], self.next_timeout())
                try:
                    received = os.read(wake_r, 512)
                except BlockingIOError:
                    received = b""
                if {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} & set(received):
                    name = signal.Signals(next(s for s in received if s != signal.SIGCHLD)).name
                    self.say("supervisor", f"{name}: stopping everything")
                    break
                self.reap()
                self.restart_due()
        finally:
            self.stop_all()
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
        return 1 if self.failed else 0

    def stop_all(self) -> None:
        self.stopping = True
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            _kill_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("supervisor", f"{child.name} did not stop in {self.grace:g}s: killed")
        for child in self.children:
            if child.proc is not None:
                _kill_group(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
                _wait_group_gone(child.proc.pid, timeout=5)
        for child in self.children:
            for pump in child.pumps:
                pump.join(5)
        stopped = stop_zygotes(self.run_dir)
        if stopped:
            self.say("supervisor", f"stopped {stopped} zygote(s) under {self.run_dir}")
        self.say("supervisor", "everything stopped")


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group PGID, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _wait_group_gone(pgid: int, *, timeout: float) -> None:
    """SIGKILL is delivered asynchronously: wait until the group is empty, so
    "everything stopped" is true when it is said."""
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def stop_zygotes(run_dir: Path) -> int:
    """End every zygote under RUN_DIR (servers/spawners/zygote.py); the servers
    they forked are in sessions of their own and keep running."""
    from servers.spawners import zygote

    stopped = 0
    for sock in sorted(run_dir.glob("zygote-*.sock")):
        try:
            reply = zygote.call(sock, {"op": "ping"}, timeout=5)
        except (OSError, ValueError):
            reply = {}
        pid = reply.get("pid")
        if isinstance(pid, int) and pid > 0:
            _kill_group(pid, signal.SIGTERM)
            _wait_gone(pid, timeout=5)
            stopped += 1
        sock.unlink(missing_ok=True)
    return stopped


def _wait_gone(pid: int, *, timeout: float) -> None:
    """Wait for PID (not our child: the worker started it) to exit, then
    SIGKILL its group if it has not."""
    from servers.spawners.zygote import process_start_time

    deadline = time.monotonic() + timeout
    while process_start_time(pid) is not None:
        if time.monotonic() > deadline:
            _kill_group(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def clear_metric_files(folder: Path) -> int:
    """Remove the metric files of the platform's previous run (servers/metrics.py):
    prometheus-client's multiprocess mode keeps one file per process and metric
    kind, and sums them all at every scrape, so without this the folder grew by
    a few files at every start and restart, and /hub/metrics kept summing the
    counters of processes long gone. A new run starts its counters from zero,
    which Prometheus reads as the counter reset it is. Returns how many went."""
    removed = 0
    for path in folder.glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubsite.supervisor", description=__doc__)
    parser.add_argument("--procfile", default="Procfile", help="the processes to run")
    parser.add_argument("names", nargs="*", help="run only these Procfile entries")
    args = parser.parse_args(argv)
    procfile = Path(args.procfile)
    try:
        procs = parse_procfile(procfile.read_text())
    except (OSError, ProcfileError) as exc:
        print(f"supervisor: {procfile}: {exc}", file=sys.stderr)
        return 2
    unknown = [name for name in args.names if name not in procs]
    if unknown:
        print(f"supervisor: {procfile} defines no {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.names:
        procs = {name: procs[name] for name in args.names}
    root = procfile.resolve().parent
    data = root / (os.environ.get("HUB_DATA_DIR") or "data")  # an absolute one stays as is
    clear_metric_files(Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or data / "metrics"))
    supervisor = Supervisor(procs, cwd=root, run_dir=data / "run", grace=STOP_GRACE, out=sys.stdout)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
