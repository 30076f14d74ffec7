"""A folder watched with Linux inotify, through ctypes (the stdlib has no
binding): what lets a router worker pull its routes the moment the hub
replaces its wake file (wakefile.py), and an embedded Celery worker take a
task the moment it is put in the broker's folder (hubsite/broker.py), instead
of both polling. Standard library only: the router must not import Django."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
ARRIVALS = IN_MOVED_TO | IN_CLOSE_WRITE  # a file renamed in, or written and closed
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name


class FolderWatch:
    """Names of files arriving in one folder. Events queue in the kernel from
    the moment the watch exists, so a file that arrives between a look at the
    folder and a wait() still ends the wait. Raises OSError when inotify is
    not there (not Linux, or out of watches): callers then poll."""

    def __init__(self, folder: str | os.PathLike[str], mask: int = ARRIVALS) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            raise OSError("inotify is not available here")
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"inotify: {os.strerror(errno)}")
        if libc.inotify_add_watch(fd, os.fsencode(folder), mask) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, f"inotify on {folder}: {os.strerror(errno)}")
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def names(self) -> list[bytes]:
        """The names of the files that arrived since the last call (no wait)."""
        found: list[bytes] = []
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.fd, 65536):
                offset = 0
                while offset + _EVENT.size <= len(data):
                    _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                    start = offset + _EVENT.size
                    found.append(data[start : start + length].rstrip(b"\0"))
                    offset = start + length
        return found

    def wait(self, timeout: float) -> list[bytes]:
        """Block until a file arrives or TIMEOUT seconds pass; what arrived."""
        with contextlib.suppress(InterruptedError):
            select.select([self.fd], [], [], max(timeout, 0.0))
        return self.names()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> FolderWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
