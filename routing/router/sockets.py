"""The router's one way to take a port (the public port, the HTTP->HTTPS
redirect port): standard library only, used by the supervisor and workers."""

from __future__ import annotations

import socket


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT: resolves port 0, fails early if
    the port is taken by something else, and keeps it ours while workers start.

    The protocol must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on
    sockets whose proto says TCP, and without it every streamed response (headers
    and body are separate writes) waited ~40 ms for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
