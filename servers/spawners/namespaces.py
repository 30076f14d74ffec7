"""Confining a forked server the way bubblewrap confines an exec'd one.

A server forked by a zygote (servers/spawners/zygote.py) never passes through
bubblewrap, so the zygote's child builds the same sandbox itself, from the same
mount plan (servers/spawners/isolation.py `mount_plan`): new mount, PID and IPC
namespaces (and a user namespace when the hub is not root, which is what
lets an unprivileged process mount), the plan's mounts done in place, then
the server's credentials: its account (users mode), no capabilities, no
supplementary groups, no_new_privs (as bubblewrap sets it).

Three processes, as with bubblewrap: the one the spawner recorded (the process
group leader, outside the new PID namespace) waits for the namespace's init;
the init (pid 1 there, which the kernel gives no default signal handling)
waits for the server (pid 2) and exits with its status. A stop's SIGTERM to
the group reaches the server; a SIGKILL reaches all three, and the kernel
kills whatever else runs in the namespace when its init dies, so nothing a
server started outlives it.

Run inside the zygote, by the user environment's python: stdlib only, loaded
by file path (nothing of the hub is importable there).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import struct
from collections.abc import Callable, Sequence
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
# statvfs flags that must be kept when remounting a bind read-only (a user
# namespace may not clear them), as the MS_ flags that set them
_KEPT_FLAGS = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}

PR_CAPBSET_DROP = 24
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522

STDIO = ("stdin", "stdout", "stderr")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)


class ConfinementError(OSError):
    """A step of the sandbox failed; the start falls back to exec."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise ConfinementError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            None if source is None else os.fsencode(source),
            os.fsencode(target),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            data.encode() or None,
        ),
        f"mount {fstype or 'bind'} on {target}",
    )


def confine(
    plan: Sequence[Sequence[Any]],
    *,
    uid: int | None,
    gid: int | None,
    report: Callable[[str | None], None],
) -> None:
    """Put the calling process's future server into the sandbox PLAN (a list
    of isolation.Mount as lists), as UID/GID when given. Returns only in the
    server process, confined. The calling process stays outside as the
    server's monitor: it calls REPORT(None) once the server is confined, or
    REPORT(reason) if it could not be, then waits and exits (never returns)."""
    outer_uid, outer_gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    status_r, status_w = os.pipe()
    try:
        _check(_libc.unshare(flags), "unshare")
        if flags & CLONE_NEWUSER:
            _map_ids(outer_uid, outer_gid)
        init = os.fork()
    except OSError as exc:
        report(f"cannot confine the server: {exc}")
        os._exit(127)
    if init == 0:
        os.close(status_r)
        server = _init(plan, status_w)
        if server == 0:
            _drop_privileges(uid, gid, status_w)
            return
        _wait_for(server)  # never returns
    os.close(status_w)
    # outlive the server, which gets the group's signals itself; before the
    # report, since a stop may follow the moment the worker has our pid
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    answer = _read_all(status_r)
    # an OSError: the spawner gave up waiting; it stops the group, or reconcile does
    with contextlib.suppress(OSError):
        report(None if answer == b"ok" else answer.decode(errors="replace") or "init exited")
    _wait_for(init)


def _open_sources(plan: Sequence[Sequence[Any]]) -> dict[str, int]:
    paths = [f"/dev/{name}" for name in DEVICES]
    paths += [step[2] for step in plan if step[0] in ("bind", "ro-bind")]
    try:
        return {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in paths}
    except OSError as exc:
        raise ConfinementError(exc.errno, f"cannot open {exc.filename}: {exc.strerror}") from None


def _map_ids(uid: int, gid: int) -> None:
    """An unprivileged hub: its own uid and gid stay themselves inside the
    user namespace (files keep their owners); nothing else is mapped."""
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"{gid} {gid} 1")


def _init(plan: Sequence[Sequence[Any]], status: int) -> int:
    """In the namespace's init: do the mounts, fork the server. Returns the
    server's pid, or 0 in the server. Bind sources are opened first, before
    any mount covers them, and in the new mount namespace (a mount of the
    old one cannot be bound here)."""
    sources: dict[str, int] = {}
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates to the host
        sources = _open_sources(plan)
        for step in plan:
            _do(step, sources)
        server = os.fork()
    except OSError as exc:
        os.write(status, f"cannot confine the server: {exc}".encode())
        os._exit(127)
    if server == 0:
        for fd in sources.values():
            os.close(fd)
        return 0
    os.close(status)
    os.closerange(3, _max_fd())
    return server


def _do(step: Sequence[Any], sources: dict[str, int]) -> None:
    kind, path, source, mode = step[0], step[1], step[2], int(step[3])
    if kind == "tmpfs":
        _make_dir(path)
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
    elif kind == "dir":
        _make_dir(path)
        os.chmod(path, mode)
    elif kind in ("bind", "ro-bind"):
        _bind(sources[source], path, readonly=kind == "ro-bind")
    elif kind == "proc":
        _mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    elif kind == "dev":
        _make_dev(path, sources)
    else:
        raise ConfinementError(0, f"unknown mount step {kind!r}")


def _bind(fd: int, path: str, *, readonly: bool) -> None:
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        _make_dir(path)
    elif not os.path.exists(path):
        _make_dir(os.path.dirname(path))
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    if readonly:
        kept = os.statvfs(path).f_flag
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(ms for st, ms in _KEPT_FLAGS.items() if kept & st)
        _mount(None, path, None, flags)


def _make_dev(path: str, sources: dict[str, int]) -> None:
    """bubblewrap's --dev: a tmpfs with the harmless devices, a private
    devpts (terminals), and the usual links."""
    _make_dir(path)
    _mount("tmpfs", path, "tmpfs", MS_NOSUID, "mode=755")
    for name in DEVICES:
        _bind(sources[f"/dev/{name}"], f"{path}/{name}", readonly=False)
    for name in ("shm", "pts"):
        os.mkdir(f"{path}/{name}", 0o755)
    options = "newinstance,ptmxmode=0666,mode=620"
    _mount("devpts", f"{path}/pts", "devpts", MS_NOSUID | MS_NOEXEC, options)
    links = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd"}
    links.update({name: f"/proc/self/fd/{n}" for n, name in enumerate(STDIO)})
    for name, target in links.items():
        os.symlink(target, f"{path}/{name}")


def _make_dir(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _drop_privileges(uid: int | None, gid: int | None, status: int) -> None:
    """In the server: its account, no capabilities left to regain, and still
    dumpable (a uid change from root clears that, which would make the
    server's own /proc files root's), then tell the monitor it is confined."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
        for cap in range(last + 1):
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping the bounding set")
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)  # clears every capability
        _clear_capabilities()
        _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "setting dumpable")
    except OSError as exc:
        os.write(status, f"cannot drop the server's privileges: {exc}".encode())
        os._exit(127)
    os.write(status, b"ok")
    os.close(status)


def _clear_capabilities() -> None:
    """capset(2) with empty sets: root in sandbox mode, or the owner of a new
    user namespace, keeps a uid but no power over the mounts."""
    header = ctypes.create_string_buffer(struct.pack("Ii", _CAP_VERSION_3, 0))
    data = ctypes.create_string_buffer(bytes(24))  # two empty {effective, permitted, inheritable}
    _check(_libc.capset(header, data), "clearing capabilities")


def _wait_for(pid: int) -> None:
    """Reap children (in the init: every orphan of the namespace) until PID
    exits, then exit as it did."""
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(127)
        except InterruptedError:
            continue
        if child == pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    return data


def _max_fd() -> int:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if 0 < soft < 1 << 20 else 65536
