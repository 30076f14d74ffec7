"""Prefork zygote: forks single-user servers from an interpreter that has
already imported them (Android's zygote, gunicorn's preload).

`jupyterhub-singleuser` spends ~2.8 s of CPU importing jupyter_server,
jupyterlab and jupyterhub before it does anything. One zygote per user
environment pays that once; each server is then a fork plus the app's own
initialisation, running exactly the entrypoint script it would have exec'd.

Run by the USER environment's python, so this file imports only the stdlib
(the hub's LocalProcessSpawner imports it too, for the client half).

Per-user state captured at import time is the danger of forking: e.g.
LabApp.user_settings_dir is computed from HOME when the class is defined,
send2trash keeps ~/.local/share from import, jupyter_client's Session.username
is USER. The zygote therefore imports with sentinel values for HOME, USER and
JUPYTERHUB_SERVICE_PREFIX, finds where those sentinels were captured (module
globals, class attributes, traitlets defaults, function defaults) and each
child substitutes its own values there. Every other variable read during the
imports (or read by the interpreter at start-up: PYTHON*, LC_*, LANG, ...)
must be equal in the request, otherwise the request is refused and the
spawner execs instead.

Every server inherits the zygote's memory, so the zygote never reads what
one server is told: a spawn's header (op and stamp) makes it fork, and the
child alone reads the rest (argv, environment and token, record, sandbox).
An isolated server (HUB_LOCAL_ISOLATION users or sandbox) is confined by its
child to the same mount plan bubblewrap would build (namespaces.py), and
runs as its account when the zygote is root.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType
from typing import Any

MAX_REQUEST = 1024 * 1024
SUBSTITUTED = ("HOME", "USER", "JUPYTERHUB_SERVICE_PREFIX")
STARTUP_KEYS = ("LANG", "LANGUAGE", "TZ", "TMPDIR")
STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC")
IDLE_CHECK = 30.0  # seconds between checks that our socket file is still ours


# --- shared by the hub side and the zygote ------------------------------------------


def env_key(env_dir: str | Path) -> str:
    return hashlib.sha256(str(Path(env_dir).resolve()).encode()).hexdigest()[:16]


def interpreter(entrypoint: Path) -> str | None:
    """The python of ENTRYPOINT's shebang, when it is a plain `#!/abs/python`
    (what exec would run); None for anything else (no prefork then)."""
    try:
        with open(entrypoint, "rb") as fh:
            first = fh.readline(4096).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    path = first[2:].strip()
    if " " in path or not path.startswith("/") or not Path(path).name.startswith("python"):
        return None
    return path


def env_stamp(entrypoint: Path, python: str, base_env: dict[str, str]) -> str:
    """Changes when the user environment's files change (a package installed or
    upgraded touches site-packages; a new interpreter changes the binary), when
    this file changes, or when the environment the zygote starts with changes."""
    env_dir = entrypoint.parent.parent
    parts: list[Any] = [sorted(base_env.items())]
    paths = [Path(python), entrypoint, Path(__file__)]
    paths += sorted(env_dir.glob("lib/python*/site-packages"))
    for path in paths:
        try:
            parts.append([str(path), os.stat(path).st_mtime_ns])
        except OSError:
            parts.append([str(path), None])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def sentinels(key: str, run_dir: Path) -> dict[str, str]:
    """Values the zygote imports with in place of the per-server variables."""
    return {
        "HOME": str(run_dir / f"zygote-{key}.home"),
        "USER": f"zygote-user-{key}",
        "JUPYTERHUB_SERVICE_PREFIX": f"/zygote-prefix-{key}/",
    }


def _unix_address(path: Path) -> tuple[str, int | None]:
    """sun_path holds ~107 bytes: longer paths go through /proc/self/fd."""
    if len(os.fsencode(str(path))) < 100:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def call(
    path: Path,
    message: dict[str, Any],
    *,
    timeout: float,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Send one JSON line to the zygote at PATH and read its one-line answer;
    with BODY, a spawn: MESSAGE is its header, and BODY (the server's
    environment, its token included) goes only to the forked child, once that
    answers "go", so that the zygote, whose memory every later server
    inherits, never holds one user's secrets.
    Raises OSError when nobody listens there, ValueError on a garbled answer."""
    address, dirfd = _unix_address(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(json.dumps(message).encode() + b"\n")
            reply = _answer(sock)
            if body is not None and reply.get("go"):
                sock.sendall(json.dumps(body).encode() + b"\n")
                reply = _answer(sock)
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return reply


def _answer(sock: socket.socket) -> dict[str, Any]:
    answer = _read_line(sock)
    if answer is None:
        raise ValueError("the zygote closed the connection without answering")
    reply = json.loads(answer)
    if not isinstance(reply, dict):
        raise ValueError("the zygote answered something else than an object")
    return reply


def _read_line(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("message too long")
    return data.split(b"\n", 1)[0]


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a live process from a reused pid
    (None once it has exited, reaped or not). The hub's spawner uses it too."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def write_record(path: str, mark: dict[str, Any]) -> None:
    """Write, from inside a new server process (after fork, before its code
    runs), the record that makes it findable by LocalProcessSpawner.list_running:
    MARK plus this process's pid and start time, renamed into place whole."""
    pid = os.getpid()
    data = json.dumps({**mark, "pid": pid, "started": process_start_time(pid)})
    partial = f"{path}.{pid}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(partial, path)


# --- the zygote -------------------------------------------------------------------------


@dataclass
class Job:
    """What a forked child runs once it is set up."""

    entrypoint: str


class Captures:
    """Where the imports kept a sentinel, so a child can put its own value there."""

    def __init__(self, marks: dict[str, str]) -> None:
        self.marks = marks
        self.locations: list[tuple[str, Any, Any]] = []
        self.caches: list[Any] = []

    def tainted(self, value: Any, depth: int = 1) -> bool:
        if isinstance(value, str):
            return any(mark in value for mark in self.marks)
        if isinstance(value, bytes):
            return any(os.fsencode(mark) in value for mark in self.marks)
        if depth and isinstance(value, list | tuple | set | frozenset):
            return any(self.tainted(item, depth - 1) for item in value)
        if depth and isinstance(value, dict):
            return any(
                self.tainted(k, depth - 1) or self.tainted(v, depth - 1) for k, v in value.items()
            )
        return False

    def scan(self, skip: set[str]) -> None:
        classes: list[type] = []
        seen: set[int] = set()
        for name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if name in skip or not isinstance(namespace, dict):
                continue
            for attr, value in list(namespace.items()):
                if isinstance(value, type):
                    if id(value) not in seen:
                        seen.add(id(value))
                        classes.append(value)
                elif self.tainted(value):
                    self.locations.append(("item", namespace, attr))
                else:
                    self._note_callable(value)
        while classes:
            cls = classes.pop()
            for attr, value in list(cls.__dict__.items()):
                self._scan_class_item(cls, attr, value)
            try:
                subclasses = type.__subclasses__(cls)
            except TypeError:
                subclasses = []
            for sub in subclasses:
                if id(sub) not in seen:
                    seen.add(id(sub))
                    classes.append(sub)

    def _scan_class_item(self, cls: type, attr: str, value: Any) -> None:
        if attr == "_static_immutable_initial_values" and isinstance(value, dict):
            for key, item in value.items():
                if self.tainted(item):
                    self.locations.append(("item", value, key))
        elif self.tainted(value):
            self.locations.append(("attr", cls, attr))
        elif self.tainted(_instance_attr(value, "default_value")):
            self.locations.append(("attr", value, "default_value"))  # a traitlets trait
        else:
            self._note_callable(value)

    def _note_callable(self, value: Any) -> None:
        func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if isinstance(func, FunctionType):
            if func.__defaults__ and self.tainted(func.__defaults__):
                self.locations.append(("attr", func, "__defaults__"))
            if func.__kwdefaults__ and self.tainted(func.__kwdefaults__):
                self.locations.append(("attr", func, "__kwdefaults__"))
        elif (
            type(value).__name__ == "_lru_cache_wrapper"
            and value.cache_info().currsize
            and all(cache is not value for cache in self.caches)
        ):
            self.caches.append(value)  # may hold a value computed from a sentinel

    def apply(self, values: dict[str, str]) -> None:
        """In a child: replace every sentinel by this server's value."""
        pairs = [(mark, values[key]) for mark, key in self.marks.items()]

        def sub(value: Any, depth: int = 1) -> Any:
            if isinstance(value, str):
                for mark, real in pairs:
                    value = value.replace(mark, real)
                return value
            if isinstance(value, bytes):
                for mark, real in pairs:
                    value = value.replace(os.fsencode(mark), os.fsencode(real))
                return value
            if depth and isinstance(value, list):
                value[:] = [sub(item, depth - 1) for item in value]
                return value
            if depth and isinstance(value, tuple | set | frozenset):
                return type(value)(sub(item, depth - 1) for item in value)
            if depth and isinstance(value, dict):
                items = [(sub(k, depth - 1), sub(v, depth - 1)) for k, v in value.items()]
                value.clear()
                value.update(items)
                return value
            return value

        for kind, holder, key in self.locations:
            if kind == "item":
                holder[key] = sub(holder[key])
            else:
                setattr(holder, key, sub(getattr(holder, key)))
        for cache in self.caches:
            cache.cache_clear()


class Zygote:
    def __init__(self, *, socket_path: Path, entrypoint: Path, stamp: str, key: str) -> None:
        self.socket_path = socket_path
        self.entrypoint = entrypoint
        self.stamp = stamp
        self.marks = sentinels(key, socket_path.parent)
        self.import_env: dict[str, str] = {}
        self.read_keys: set[str] = set()
        self.captures = Captures({v: k for k, v in self.marks.items()})
        self.listener: socket.socket | None = None
        self.inode = 0

    def preload(self) -> None:
        """Import what the entrypoint imports at start, starting nothing: no
        event loop, no thread. The variables read meanwhile are recorded."""
        os.environ.update(self.marks)
        self.import_env = dict(os.environ)
        environ_class = type(os.environ)
        original = environ_class.__getitem__
        read_keys = self.read_keys

        def spy(env: Any, key: Any) -> Any:
            read_keys.add(os.fsdecode(key))
            return original(env, key)

        environ_class.__getitem__ = spy
        try:
            _import_server_modules()
        finally:
            environ_class.__getitem__ = original
        import threading

        if threading.active_count() != 1:
            raise RuntimeError("importing the server started a thread: forking would be unsafe")
        self.captures.scan(skip={"__main__", "os", "posix", __name__})

    def listen(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        address, dirfd = _unix_address(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(address)
        finally:
            os.umask(old_umask)
            if dirfd is not None:
                os.close(dirfd)
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        listener.settimeout(IDLE_CHECK)
        self.listener = listener
        self.inode = os.stat(self.socket_path).st_ino

    def serve(self) -> Job | None:
        """Answer requests until told to stop. Returns only in a forked child."""
        signal.signal(signal.SIGCHLD, _reap)
        _log(f"zygote {os.getpid()} ready on {self.socket_path}")
        assert self.listener is not None
        while True:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                if not self._still_ours():
                    _log("socket file replaced or removed: exiting")
                    return None
                continue
            try:
                job, stop = self._handle(conn)
            except (OSError, ValueError) as exc:
                _log(f"bad request: {exc}")
                job, stop = None, False
            finally:
                conn.close()
            if job is not None or stop:
                return job

    def _still_ours(self) -> bool:
        try:
            return os.stat(self.socket_path).st_ino == self.inode
        except OSError:
            return False

    def _handle(self, conn: socket.socket) -> tuple[Job | None, bool]:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            _reply(conn, {"error": "refused: another user"})
            return None, False
        conn.settimeout(5)
        line = _read_line(conn)
        if line is None:
            return None, False
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        op = request.get("op")
        if op == "ping":
            _reply(conn, {"pid": os.getpid(), "stamp": self.stamp})
            return None, False
        if op != "spawn":
            _reply(conn, {"error": f"unknown op {op!r}"})
            return None, False
        if set(request) - {"op", "stamp"}:
            # what else a spawn says goes to the child alone (see call())
            _reply(conn, {"error": "a spawn's header carries only op and stamp"})
            return None, False
        if request.get("stamp") != self.stamp:
            _reply(conn, {"error": "stale"})
            _log("user environment changed: exiting so a fresh zygote replaces this one")
            return None, True
        _flush()
        pid = os.fork()
        if pid == 0:
            self._become_child(conn)
            return Job(entrypoint=str(self.entrypoint)), False
        return None, False  # the child answers: its pid once it can be stopped, or why not

    def _validate(self, request: dict[str, Any]) -> dict[str, Any]:
        argv, env = request.get("argv"), request.get("env")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ValueError("argv must be a non-empty list of strings")
        if argv[0] != str(self.entrypoint):
            raise ValueError(f"this zygote only runs {self.entrypoint}")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise ValueError("env must map names to strings")
        for key in ("cwd", "log"):
            if not (isinstance(request.get(key), str) and request[key].startswith("/")):
                raise ValueError(f"{key} must be an absolute path")
        limit = request.get("rlimit_as")
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise ValueError("rlimit_as must be a positive integer or null")
        record = request.get("record")
        if record is not None and not (
            isinstance(record, dict)
            and isinstance(record.get("path"), str)
            and record["path"].startswith("/")
            and isinstance(record.get("mark"), dict)
        ):
            raise ValueError("record must be {path: absolute path, mark: object} or null")
        _validate_confinement(request.get("confine"))
        missing = [key for key in SUBSTITUTED if not env.get(key)]
        if missing:
            raise ValueError(f"environment lacks {', '.join(missing)}")
        keys = self.read_keys | {
            key
            for key in {*env, *self.import_env}
            if key in STARTUP_KEYS or key.startswith(STARTUP_PREFIXES)
        }
        differ = sorted(
            key for key in keys - set(SUBSTITUTED) if env.get(key) != self.import_env.get(key)
        )
        if differ:
            raise ValueError(f"environment differs from the zygote's in {', '.join(differ)}")
        return request

    def _become_child(self, conn: socket.socket) -> None:
        """Everything between fork and running the entrypoint. Never returns
        into the zygote's loop on failure: it exits instead.

        The child reads the spawn itself (see call()). It answers its pid
        only once it leads its own process group, has written its record
        and, when confined, its server is in the sandbox: a stop sent the
        moment the worker has the pid signals that group (before setsid()
        there is none, and the SIGTERM would be lost), and a sandbox that
        cannot be built is an answer the worker falls back to exec on, not a
        failed start."""
        try:
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            if self.listener is not None:
                self.listener.close()
            _reply(conn, {"go": True})
            line = _read_line(conn)
            if line is None:
                os._exit(0)
            try:
                request = self._validate(json.loads(line))
            except ValueError as exc:
                _reply(conn, {"error": str(exc)})
                os._exit(0)
            os.setsid()
            if request.get("record"):
                write_record(request["record"]["path"], request["record"]["mark"])
            logfd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            if request.get("confine"):
                self._confine(conn, request)  # returns in the server: its monitor answered
            else:
                _reply(conn, {"pid": os.getpid(), "started": process_start_time(os.getpid())})
            conn.close()
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(logfd, 1)
            os.dup2(logfd, 2)
            os.closerange(3, _max_fd())
            os.chdir(request["cwd"])
            env = request["env"]
            os.environ.clear()
            os.environ.update(env)
            self.captures.apply({key: env[key] for key in SUBSTITUTED})
            _refresh_environment_copies()
            _apply_limits(request.get("rlimit_as"))
            sys.argv = list(request["argv"])
        except BaseException:
            import traceback

            traceback.print_exc()
            _flush()
            os._exit(127)

    def _confine(self, conn: socket.socket, request: dict[str, Any]) -> None:
        """Returns in the confined server; this process stays outside as its
        monitor, answers the worker for it and never returns."""
        if _namespaces is None:
            raise RuntimeError("namespaces.py was not loaded")
        confinement = request["confine"]
        leader, started = os.getpid(), process_start_time(os.getpid())

        def report(error: str | None) -> None:
            if error is None:
                _reply(conn, {"pid": leader, "started": started})
                return
            _reply(conn, {"error": error})
            record = request.get("record")
            if record:
                with contextlib.suppress(OSError):
                    os.unlink(record["path"])

        _namespaces.confine(
            confinement["mounts"],
            uid=confinement.get("uid"),
            gid=confinement.get("gid"),
            report=report,
        )


def _validate_confinement(confinement: Any) -> None:
    if confinement is None:
        return
    if not isinstance(confinement, dict) or not isinstance(confinement.get("mounts"), list):
        raise ValueError("confine must be {mounts: [...], uid, gid} or null")
    for step in confinement["mounts"]:
        if not (
            isinstance(step, list)
            and len(step) == 4
            and all(isinstance(part, str) for part in step[:3])
            and isinstance(step[3], int)
        ):
            raise ValueError("a mount step is [kind, path, source, mode]")
    for key in ("uid", "gid"):
        if not isinstance(confinement.get(key), int | None):
            raise ValueError(f"confine.{key} must be an integer or null")


def _instance_attr(value: Any, name: str) -> Any:
    """VALUE.NAME from its instance dict only: no descriptor, no __getattr__."""
    try:
        return object.__getattribute__(value, "__dict__").get(name)
    except (AttributeError, TypeError):
        return None


def _import_server_modules() -> None:
    """What `jupyterhub-singleuser` imports before serving: the singleuser
    entrypoint, jupyter_server's app and handlers, and the server extensions
    enabled in this environment (sys.prefix and system config only: a user's
    ~/.jupyter is theirs and read at run time as usual)."""
    import glob
    import importlib

    import jupyter_server.serverapp as serverapp
    import jupyterhub.singleuser  # noqa: F401

    for module in getattr(serverapp, "JUPYTER_SERVICE_HANDLERS", {}).values():
        for name in module or ():
            _try_import(importlib, name)
    from jupyter_core.paths import ENV_CONFIG_PATH, SYSTEM_CONFIG_PATH

    names: list[str] = []
    for directory in [*SYSTEM_CONFIG_PATH, *ENV_CONFIG_PATH]:
        for path in sorted(glob.glob(os.path.join(directory, "jupyter_server_config.d", "*.json"))):
            try:
                with open(path) as fh:
                    enabled = json.load(fh)["ServerApp"]["jpserver_extensions"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            names += [name for name, on in enabled.items() if on]
    for name in dict.fromkeys(names):
        package = _try_import(importlib, name)
        points = getattr(package, "_jupyter_server_extension_points", None)
        if callable(points):
            for point in points():
                if isinstance(point, dict) and isinstance(point.get("module"), str):
                    _try_import(importlib, point["module"])


def _try_import(importlib: Any, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        _log(f"preload of {name} failed: {exc}")
        return None


def _refresh_environment_copies() -> None:
    handlers = sys.modules.get("wsgiref.handlers")
    copy = getattr(getattr(handlers, "BaseHandler", None), "os_environ", None)
    if isinstance(copy, dict):  # wsgiref copies the whole environment at import
        copy.clear()
        copy.update(handlers.read_environ())


def _apply_limits(mem_limit: int | None) -> None:
    import resource

    if mem_limit:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


def _max_fd() -> int:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if 0 < soft < 1 << 20 else 65536


def _reap(_signum: int, _frame: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reply(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _log(message: str) -> None:
    # plain writes, no logging config: a child inherits the logging module as is
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} zygote: {message}\n")
    sys.stderr.flush()


_namespaces: Any = None  # servers/spawners/namespaces.py, loaded by main()


def _load_namespaces() -> Any:
    """The sandbox builder, by file path: the user environment cannot import
    the hub's packages, and after a confined child's mounts the file may be
    hidden (a checkout under /tmp), so it is loaded before any fork."""
    import importlib.util

    path = Path(__file__).with_name("namespaces.py")
    spec = importlib.util.spec_from_file_location("_hub_namespaces", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> Job | None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--entrypoint", required=True, type=Path)
    parser.add_argument("--stamp", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    # the entrypoint script's directory, not this file's, is sys.path[0] under exec
    sys.path[0] = str(args.entrypoint.parent)
    zygote = Zygote(
        socket_path=args.socket, entrypoint=args.entrypoint, stamp=args.stamp, key=args.key
    )
    global _namespaces
    _namespaces = _load_namespaces()
    started = time.process_time()
    zygote.preload()
    _log(
        f"preloaded {len(sys.modules)} modules in {time.process_time() - started:.2f}s CPU;"
        f" {len(zygote.captures.locations)} per-user captures,"
        f" {len(zygote.read_keys)} variables read"
    )
    zygote.listen()
    job = zygote.serve()
    if job is None and zygote._still_ours():
        zygote.socket_path.unlink(missing_ok=True)
    return job


def run_entrypoint(entrypoint: str) -> None:
    """In a forked child: run ENTRYPOINT as exec would, then exit as the
    interpreter would (non-daemon threads joined, atexit handlers run, output
    flushed) but without tearing the interpreter down. A server forked from
    the zygote shares with it every page of what was imported, and freeing
    that object by object writes to each page, so the kernel copies them all:
    1.4-2 s after a stopped server had closed its port, which every stop
    waited for (the hub marks a server stopped once its process is gone), against
    0.06-0.14 s this way. The memory goes back with the process anyway."""
    import atexit
    import runpy
    import threading

    code = 0
    try:
        runpy.run_path(entrypoint, run_name="__main__")
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]  # what finalization does first
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _exit_status(code: object) -> int:
    """sys.exit(CODE) as the interpreter turns it into a status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(OSError, ValueError):
        print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    _job = main(sys.argv[1:])
    if _job is None:
        sys.exit(0)
    run_entrypoint(_job.entrypoint)  # a forked child
