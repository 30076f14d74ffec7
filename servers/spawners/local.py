"""LocalProcessSpawner: each server is a detached `jupyterhub-singleuser`
process on 127.0.0.1, started from a user environment (a virtualenv) and run in
the user's persistent home under the data dir.

With isolation (servers/spawners/isolation.py, the default), a server runs in
bubblewrap, as its user's own system account when the hub is root; with
HUB_LOCAL_ISOLATION=none, as the hub's own OS user (JupyterHub's
SimpleLocalProcessSpawner). Limits applied where the OS allows it without
privileges: address space (RLIMIT_AS, from the profile's mem_limit) and open
files (RLIMIT_NOFILE); CPU limits need cgroups and are passed only as the
informational CPU_LIMIT variable.

Which processes are ours: every server, as its first act after fork (before
any server code runs), writes a record `<run_dir>/servers/<attempt>.json`
with its pid, start time, user, server name, port and spawn attempt. A server
therefore never runs unrecorded, even when the worker that launched it is
killed a moment later; `list_running` reads these records (dropping those
whose process is gone) and reconcile stops the ones the database does not
account for. Nothing outside the run dir is trusted (no process-name or
environment scanning: a forked server's /proc environ is its zygote's).

With `prefork` (HUB_LOCAL_PREFORK), a server is forked from a zygote process
per user environment that has already imported the server's modules
(servers/spawners/zygote.py), instead of exec'ing `jupyterhub-singleuser`:
~2.5 s of CPU less per start. An isolated server is then confined by its
forked child itself, to the same mount plan bubblewrap gets
(servers/spawners/namespaces.py). Anything going wrong on that path falls
back to the exec path: prefork may make a start cheaper, never make it fail.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from servers.spawners import isolation, zygote
from servers.spawners.base import (
    Progress,
    Running,
    Spawner,
    SpawnError,
    SpawnSpec,
    Started,
    hub_environment,
)
from servers.spawners.zygote import (
    process_start_time,  # stdlib-only, shared with the zygote
    write_record,
)

log = logging.getLogger(__name__)

_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


def parse_bytes(value: str) -> int:
    """'512M' -> 536870912; plain numbers are bytes (KubeSpawner's notation)."""
    text = value.strip().upper().removesuffix("I").removesuffix("B")
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def launch_detached(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start CMD in its own session (stopped as a process group), output appended
    to LOG_PATH, and reaped by a thread when it exits so that a dead server or
    zygote never lingers as a zombie."""
    with open(log_path, "ab") as logfile:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalProcessSpawner(Spawner):
    def __init__(
        self,
        *,
        default_env: str,
        log_dir: Path,
        allow_root: bool | None = None,
        prefork: bool = False,
        run_dir: Path | None = None,
        isolation_mode: str = "none",
        data_dir: Path | None = None,
        account_prefix: str = "hub-",
    ) -> None:
        self.default_env = default_env
        self.log_dir = log_dir
        self.allow_root = os.geteuid() == 0 if allow_root is None else allow_root
        self.run_dir = run_dir or log_dir.parent / "run"
        self.records = self.run_dir / "servers"
        self.isolation = isolation_mode
        self.data_dir = data_dir or log_dir.parent
        self.account_prefix = account_prefix
        self.zygotes = Zygotes(self.run_dir, log_dir) if prefork else None

    def command(self, spec: SpawnSpec) -> list[str]:
        env_dir = Path(spec.user_env or self.default_env)
        exe = env_dir / "bin" / "jupyterhub-singleuser"
        if not exe.exists():
            raise SpawnError(f"user environment {env_dir} has no jupyterhub-singleuser")
        cmd = [str(exe)]
        if self.allow_root:
            cmd.append("--ServerApp.allow_root=True")
        return cmd

    def base_environment(self, exe: str, api_url: str) -> dict[str, str]:
        """The part of a server's environment that is the same for every server
        of this hub and user environment (what a zygote is started with)."""
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        env["SHELL"] = "/bin/bash"
        env["VIRTUAL_ENV"] = str(Path(exe).parent.parent)
        env["PATH"] = f"{Path(exe).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env["JUPYTERHUB_API_URL"] = api_url
        return env

    def start(self, spec: SpawnSpec, progress: Progress) -> Started:
        cmd = self.command(spec)
        spec.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        base = self.base_environment(cmd[0], spec.api_url)
        log_path = self.log_dir / f"{spec.username}-{spec.server_name or 'default'}.log"
        limit = parse_bytes(spec.mem_limit) if spec.mem_limit else None
        attempt = spec.attempt or uuid.uuid4().hex
        self.records.mkdir(mode=0o700, parents=True, exist_ok=True)
        progress(30, "Starting the Jupyter server process")
        if self.zygotes is not None:
            port = free_port()
            env = self._environment(spec, base, port)
            record = self._record(spec, attempt, port, log_path)
            confine = None
            if self.isolation != "none":
                confinement, env["USER"] = self._confinement(cmd, spec)
                confine = {
                    "mounts": [list(step) for step in isolation.mount_plan(confinement)],
                    "uid": confinement.uid,
                    "gid": confinement.gid,
                }
            try:
                forked = self.zygotes.spawn(
                    cmd,
                    base,
                    env,
                    cwd=spec.home,
                    log=log_path,
                    limit=limit,
                    record=record,
                    confine=confine,
                )
            except Exception as exc:  # prefork must never fail a start
                log.warning("prefork start of %s failed (%s): starting by exec", spec.prefix, exc)
            else:
                if forked is not None:
                    pid, started = forked
                    state = {"pid": pid, "port": port, "started": started, "log": str(log_path)}
                    state.update(record=record["path"], forked=True)
                    return Started(url=f"http://127.0.0.1:{port}", state=state)
        port = free_port()  # a fresh one: a lost zygote reply may have left a child on the last
        env = self._environment(spec, base, port)
        if self.isolation != "none":
            confinement, env["USER"] = self._confinement(cmd, spec)
            try:
                cmd = isolation.build_bwrap_argv(isolation.find_bwrap(), confinement, cmd)
            except isolation.IsolationError as exc:
                raise SpawnError(f"cannot isolate the server: {exc}") from exc
        return self._exec(
            cmd, env, spec, port, log_path, limit, self._record(spec, attempt, port, log_path)
        )

    def _record(self, spec: SpawnSpec, attempt: str, port: int, log_path: Path) -> dict[str, Any]:
        """What the server writes about itself once forked (see the module doc)."""
        mark = {
            "username": spec.username,
            "server_name": spec.server_name,
            "attempt": attempt,
            "port": port,
            "log": str(log_path),
        }
        return {"path": str(self.records / f"{attempt}-{port}.json"), "mark": mark}

    def list_running(self) -> list[Running]:
        found = []
        for path in sorted(self.records.glob("*.json")):
            try:
                record = json.loads(path.read_text())
                pid, started = int(record["pid"]), record["started"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written (renamed into place when whole), or not ours
            if process_start_time(pid) != started:
                path.unlink(missing_ok=True)  # exited: the record goes with it
                continue
            state = {"pid": pid, "port": record.get("port"), "started": started}
            state.update(log=record.get("log", ""), record=str(path))
            found.append(
                Running(
                    username=str(record.get("username", "")),
                    server_name=str(record.get("server_name", "")),
                    attempt=str(record.get("attempt", "")),
                    state=state,
                )
            )
        return found

    def _environment(self, spec: SpawnSpec, base: dict[str, str], port: int) -> dict[str, str]:
        env = dict(base)
        env.update(HOME=str(spec.home), USER=spec.username)
        env.update(hub_environment(spec, bind_url=f"http://127.0.0.1:{port}"))
        return env

    def _confinement(self, cmd: list[str], spec: SpawnSpec) -> tuple[isolation.Confinement, str]:
        """What the server of SPEC is confined to (in users mode, its account
        created first), and the USER it runs as."""
        try:
            env_dir = Path(cmd[0]).parent.parent
            reopen = isolation.user_environment_paths(env_dir)
            if self.isolation != "users":
                isolation.claim_home(spec.home)
                confinement = isolation.Confinement(
                    data_dir=self.data_dir, home=spec.home, reopen=reopen
                )
                return confinement, spec.username
            user = isolation.account_name(spec.username, prefix=self.account_prefix)
            account = isolation.ensure_account(user, home=spec.home)
            isolation.lock_data_dir(self.data_dir, spec.home.parent)
        except (isolation.IsolationError, OSError) as exc:
            raise SpawnError(f"cannot isolate the server: {exc}") from exc
        confinement = isolation.Confinement(
            data_dir=self.data_dir,
            home=spec.home,
            reopen=reopen,
            uid=account.pw_uid,
            gid=account.pw_gid,
        )
        return confinement, user

    def _exec(
        self,
        cmd: list[str],
        env: dict[str, str],
        spec: SpawnSpec,
        port: int,
        log_path: Path,
        limit: int | None,
        record: dict[str, Any],
    ) -> Started:
        url = f"http://127.0.0.1:{port}"

        def preexec() -> None:
            _apply_limits(limit)
            write_record(record["path"], record["mark"])

        proc = launch_detached(cmd, env, spec.home, log_path, preexec=preexec)
        state = {"pid": proc.pid, "port": port, "started": process_start_time(proc.pid)}
        state.update(log=str(log_path), record=record["path"])
        return Started(url=url, state=state)

    def poll(self, state: dict[str, Any]) -> int | None:
        pid = state.get("pid")
        if not pid:
            return 0
        started = process_start_time(int(pid))
        if started is None or (state.get("started") and started != state["started"]):
            return 0
        return None

    def stop(self, state: dict[str, Any], *, grace: float) -> None:
        try:
            self._stop(state, grace=grace)
        finally:
            if state.get("record") and self.poll(state) is not None:
                Path(state["record"]).unlink(missing_ok=True)

    def _stop(self, state: dict[str, Any], *, grace: float) -> None:
        if self.poll(state) is not None:
            return
        pid = int(state["pid"])
        with _exit_watch(pid) as exited:
            _signal_group(pid, signal.SIGTERM)
            if self._wait_exit(state, exited, grace):
                return
            log.warning("server pid %s ignored SIGTERM for %.0fs: killing it", pid, grace)
            _signal_group(pid, signal.SIGKILL)
            self._wait_exit(state, exited, 5.0)

    def _wait_exit(self, state: dict[str, Any], exited: int | None, timeout: float) -> bool:
        """Whether the process of STATE is gone within TIMEOUT. With a pidfd
        (EXITED) the kernel says the moment it exits; without, look every 50 ms."""
        deadline = time.monotonic() + timeout
        while True:
            if self.poll(state) is not None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if exited is not None:
                if select.select([exited], [], [], left)[0]:
                    time.sleep(0.001)  # exited: let /proc catch up rather than spin
            else:
                time.sleep(min(0.05, left))

    def describe_failure(self, state: dict[str, Any]) -> str:
        lines = _log_tail(state.get("log")).splitlines()
        tail = "; ".join(line for line in lines[-3:] if line.strip())
        return f"the server process exited{': ' + tail if tail else ''}"

    def lost_its_port(self, state: dict[str, Any]) -> bool:
        """jupyter-server's words when its port is taken, naming this port (the
        log is appended to across starts, each with its own port)."""
        port = state.get("port")
        text = _log_tail(state.get("log")).lower() if port else ""
        return f"port {port} is already in use" in text or f"port {port} is not available" in text


def _log_tail(path: str | None, limit: int = 20_000) -> str:
    """The last LIMIT bytes of a server's log ("" if it has none): the log
    grows across the server's starts, only its end says why the last one
    ended."""
    if not path:
        return ""
    try:
        with open(path, "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(log_file.tell() - limit, 0))
            return log_file.read().decode(errors="replace")
    except OSError:
        return ""


@contextmanager
def _exit_watch(pid: int) -> Iterator[int | None]:
    """A pidfd for PID (readable once the process exits, immune to the pid
    being reused), or None where the kernel has none: a stopped server is
    then noticed by polling, up to 50 ms late."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


class ZygoteUnavailable(RuntimeError):
    """The prefork path cannot serve this start; the caller execs instead."""


class Zygotes:
    """The hub's half of prefork: finds, starts and replaces the zygote of a
    user environment, and asks it for a server. Keeps no memory: the socket
    and lock files under RUN_DIR are the state, shared by every worker."""

    start_timeout = 90.0  # imports take ~3 s of CPU, much longer on a busy host
    call_timeout = 15.0

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir

    def paths(self, env_dir: Path) -> tuple[str, Path, Path, Path]:
        key = zygote.env_key(env_dir)
        return (
            key,
            self.run_dir / f"zygote-{key}.sock",
            self.run_dir / f"zygote-{key}.lock",
            self.log_dir / f"zygote-{key}.log",
        )

    def spawn(
        self,
        cmd: list[str],
        base: dict[str, str],
        env: dict[str, str],
        *,
        cwd: Path,
        log: Path,
        limit: int | None,
        record: dict[str, Any] | None = None,
        confine: dict[str, Any] | None = None,
    ) -> tuple[int, str | None] | None:
        """Fork a server running CMD, in the sandbox CONFINE when given (see
        servers/spawners/namespaces.py): (pid, start time), or None when this
        start cannot go through a zygote (its environment differs where the
        preloaded modules would notice, or its sandbox could not be built).
        Raises on anything unexpected."""
        entrypoint = Path(cmd[0])
        python = zygote.interpreter(entrypoint)
        if python is None:
            return None
        stamp = zygote.env_stamp(entrypoint, python, base)
        header = {"op": "spawn", "stamp": stamp}
        request = {
            "argv": cmd,
            "env": env,
            "cwd": str(cwd),
            "log": str(log),
            "rlimit_as": limit,
            "record": record,
            "confine": confine,
        }
        _key, sock, _lock, _log = self.paths(entrypoint.parent.parent)
        if _read(sock.with_suffix(".failed")) == stamp:
            return None  # this environment's zygote cannot start: do not retry every time
        for _attempt in range(3):
            try:
                reply = zygote.call(sock, header, body=request, timeout=self.call_timeout)
            except (ConnectionRefusedError, FileNotFoundError):
                self.ensure(entrypoint, python, base, stamp)
                continue
            except TimeoutError:
                # hung: let the next start bring up a fresh one (the old one
                # exits once it sees its socket file gone)
                sock.unlink(missing_ok=True)
                raise
            if reply.get("error") == "stale":
                self.ensure(entrypoint, python, base, stamp)
                continue
            if "error" in reply:
                log.info("not forking %s: %s", env.get("JUPYTERHUB_SERVICE_PREFIX"), reply["error"])
                return None
            return int(reply["pid"]), reply.get("started")
        raise ZygoteUnavailable("no zygote answered")

    def ensure(self, entrypoint: Path, python: str, base: dict[str, str], stamp: str) -> None:
        """Make a zygote with STAMP listen, starting one if needed. One starter
        at a time across threads and processes (a lock file); the others wait
        for it and then find it running."""
        key, sock, lock, zlog = self.paths(entrypoint.parent.parent)
        with _locked(self.run_dir, lock):
            try:
                reply = zygote.call(sock, {"op": "ping"}, timeout=self.call_timeout)
            except (OSError, ValueError):
                reply = {}
            if reply.get("stamp") == stamp:
                return  # another thread or worker started it meanwhile
            if reply.get("pid"):
                _signal_group(int(reply["pid"]), signal.SIGTERM)  # an outdated one
            sock.unlink(missing_ok=True)
            env = {**base, **zygote.sentinels(key, self.run_dir)}
            args = ["--socket", str(sock), "--entrypoint", str(entrypoint)]
            args += ["--stamp", stamp, "--key", key]
            self.log_dir.mkdir(parents=True, exist_ok=True)
            proc = launch_detached([python, zygote.__file__, *args], env, self.run_dir, zlog)
            log.info("started zygote %s for %s", proc.pid, entrypoint.parent.parent)
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    sock.with_suffix(".failed").write_text(stamp)
                    raise ZygoteUnavailable(f"the zygote exited with {proc.returncode}; see {zlog}")
                if sock.exists():
                    try:
                        if zygote.call(sock, {"op": "ping"}, timeout=5).get("stamp") == stamp:
                            return
                    except (OSError, ValueError):
                        pass
                time.sleep(0.05)
            raise ZygoteUnavailable(f"the zygote did not listen within {self.start_timeout:.0f}s")

    def stop_all(self) -> None:
        """Stop every zygote under RUN_DIR (tests, or after changing settings);
        the servers they forked keep running."""
        for sock in self.run_dir.glob("zygote-*.sock"):
            try:
                reply = zygote.call(sock, {"op": "ping"}, timeout=5)
            except (OSError, ValueError):
                reply = {}
            if reply.get("pid"):
                _signal_group(int(reply["pid"]), signal.SIGTERM)
            sock.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@contextmanager
def _locked(run_dir: Path, path: Path) -> Iterator[None]:
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _apply_limits(mem_limit: int | None) -> None:
    if mem_limit:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("not allowed to signal process group %s", pid)
