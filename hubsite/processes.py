"""Who a process is, in a form another process can check: host, pid and the
pid's start time (so a reused pid is not mistaken for the original). Used by
the filesystem broker (who holds a message) and spawn leases (which worker
runs a start) to tell a dead holder without waiting for a timeout."""

from __future__ import annotations

import os
import socket

from servers.spawners.zygote import process_start_time  # stdlib-only


def identity(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}@{pid}@{process_start_time(pid)}"


def identity_alive(who: str) -> bool | None:
    """True/False for a process of this host; None for another host's (or
    an unreadable identity): only a timeout can tell then."""
    host, _, rest = who.partition("@")
    pid, _, started = rest.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return process_start_time(int(pid)) == started
