"""The router's timeouts and size limits, with their defaults in one place.

Every path of the router applies the same ones: the native relay, and the
connections it hands to mitmproxy (which still go through the relay's request
parser, routing/router/handoff.py). The command line options of
routing/router/edges.py default to these values; the fixed sizes of a head,
its field count and a chunk line are in routing/router/http1.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # seconds to connect to a server or the hub before answering 502
    connect_timeout: float = 10.0
    # seconds a connection (a WebSocket too) may stay silent either way before it is
    # closed, like mitmproxy's and CHP's; kernels idle longer need WebSocket pings
    # (jupyter-server sends them). mitmproxy's own 600 s stays an upper bound on
    # the connections handed to it.
    idle_timeout: float = 600.0
    # seconds from the first byte of a request head to its end: a client sending
    # a head a byte at a time (slowloris) is answered 408 and closed (node's
    # headersTimeout, which CHP inherits, is 60 s)
    head_timeout: float = 60.0
    # the largest request body forwarded (bytes; 0: no limit), 413 beyond
    max_body: int = 0
