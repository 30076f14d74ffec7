"""What sits at the router's edges, all optional: TLS termination (+ an
HTTP->HTTPS redirect port and HSTS), per-user subdomains like JupyterHub's
`subdomain_host`, connect/idle timeouts, the metrics port, and workers that
die with their supervisor.

Nothing here costs a request anything unless its option is given: the add-ons
are only installed when configured, so the plain data path is unchanged.

Subdomains (`--subdomain-host hub.example.org`), as JupyterHub does it: a
user's server lives at `https://<name>.hub.example.org/user/<name>/...` (the
path keeps its /user/<name>/ prefix), the hub stays on the bare host. So:
- on `<name>.hub.example.org`, `/user/<name>/...` is routed as usual; a path of
  another user is refused (404), never sent to that user's server; other paths
  go to the hub unchanged (JupyterHub's default route);
- on the bare host (or any other host), `/user/<name>/...` is never served from
  the shared origin: it is redirected to the user's own host, or sent to the
  hub's page when the name cannot be a DNS label.

Timeouts and limits (routing/router/limits.py holds their defaults) apply to
every connection, whichever path answers it: the relay enforces them on its
own connections and on those it hands to mitmproxy (routing/router/handoff.py),
and the add-on's public `server_connect` hook bounds mitmproxy's connects."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import re
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from routing.hostnames import is_dns_label, is_dns_name
from routing.router.limits import Limits
from routing.router.sockets import reserve_port

log = logging.getLogger("routing.router")

_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$")


@dataclass
class EdgeConfig:
    tls_cert: str | None = None
    tls_key: str | None = None
    redirect_port: int | None = None
    hsts_max_age: int = 31_536_000
    subdomain_host: str | None = None
    public_scheme: str | None = None  # what browsers use, when TLS ends before us
    limits: Limits = field(default_factory=Limits)
    metrics_host: str | None = None
    metrics_port: int = 0
    metrics_fd: int | None = None  # set in supervised workers
    worker_index: int = 0

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def redirect_scheme(self) -> str:
        """The scheme of the subdomain redirects: browsers' scheme, not ours."""
        return self.public_scheme or self.scheme

    @property
    def metrics(self) -> bool:
        return self.metrics_host is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument(
        "--tls-cert",
        default=env.get("HUB_ROUTER_TLS_CERT"),
        help="PEM certificate (chain): terminate TLS on the public port (env HUB_ROUTER_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        default=env.get("HUB_ROUTER_TLS_KEY"),
        help="PEM private key for --tls-cert (env HUB_ROUTER_TLS_KEY)",
    )
    parser.add_argument(
        "--redirect-port",
        type=int,
        help="also listen on this port (same host) and redirect plain HTTP to HTTPS",
    )
    parser.add_argument(
        "--hsts-max-age",
        type=int,
        default=31_536_000,
        help="Strict-Transport-Security max-age on TLS responses (0: no header)",
    )
    parser.add_argument(
        "--subdomain-host",
        default=env.get("HUB_SUBDOMAIN_HOST"),
        help="per-user subdomains: <user>.HOST serves /user/<user>/ (env HUB_SUBDOMAIN_HOST)",
    )
    parser.add_argument(
        "--public-scheme",
        choices=("http", "https"),
        default=_public_scheme(env.get("HUB_PUBLIC_URL", "")),
        help="scheme of subdomain redirects when a load balancer terminates TLS "
        "(default: that of env HUB_PUBLIC_URL, else https with --tls-cert, else http)",
    )
    defaults = Limits()
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=defaults.connect_timeout,
        help="seconds to connect to a backend before answering 502",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        help="seconds a connection (also a WebSocket) may stay silent before it is closed",
    )
    parser.add_argument(
        "--head-timeout",
        type=float,
        default=defaults.head_timeout,
        help="seconds a request head may take from its first byte to its end (408 beyond)",
    )
    parser.add_argument(
        "--max-body-size",
        type=int,
        default=defaults.max_body,
        help="largest request body in bytes (413 beyond; 0: no limit)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=env.get("HUB_ROUTER_METRICS_LISTEN"),
        help="HOST:PORT for GET /health and GET /metrics (env HUB_ROUTER_METRICS_LISTEN)",
    )
    parser.add_argument("--metrics-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)


def _public_scheme(public_url: str) -> str | None:
    scheme = public_url.partition("://")[0].lower() if "://" in public_url else ""
    return scheme if scheme in ("http", "https") else None


def from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> EdgeConfig:
    """Validate the edge options; a certificate that does not load fails here."""
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert:
        try:
            tls_context(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load --tls-cert/--tls-key: {exc}")
    if args.redirect_port is not None:
        if not args.tls_cert:
            parser.error("--redirect-port needs --tls-cert/--tls-key")
        if not 0 <= args.redirect_port <= 65535:
            parser.error("--redirect-port must be a port number")
    if args.hsts_max_age < 0:
        parser.error("--hsts-max-age must be 0 or more")
    for name in ("connect_timeout", "idle_timeout", "head_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be more than 0 seconds")
    if args.max_body_size < 0:
        parser.error("--max-body-size must be 0 (no limit) or more")
    subdomain = None
    if args.subdomain_host:
        subdomain = args.subdomain_host.strip().lower().rstrip(".")
        if not is_dns_name(subdomain):
            parser.error(f"--subdomain-host must be a DNS name, not {args.subdomain_host!r}")
    metrics_host, metrics_port = None, 0
    if args.metrics_listen:
        host, sep, port = args.metrics_listen.rpartition(":")
        if not sep or not port.isdigit():
            parser.error(f"--metrics-listen must be HOST:PORT, not {args.metrics_listen!r}")
        metrics_host, metrics_port = host.strip("[]") or "0.0.0.0", int(port)
    return EdgeConfig(
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        redirect_port=args.redirect_port,
        hsts_max_age=args.hsts_max_age,
        subdomain_host=subdomain,
        public_scheme=args.public_scheme,
        limits=Limits(
            connect_timeout=args.connect_timeout,
            idle_timeout=args.idle_timeout,
            head_timeout=args.head_timeout,
            max_body=args.max_body_size,
        ),
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        metrics_fd=args.metrics_fd,
        worker_index=args.worker_index,
    )


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


# --- supervisor side ------------------------------------------------------------------


class EdgeSupervisor:
    """Resolves the edge ports once (port 0 included) for all workers, and owns
    the metrics board and server."""

    def __init__(self, edges: EdgeConfig, host: str, workers: int) -> None:
        from routing.router import metrics

        self.edges, self.host = edges, host
        self.redirect: socket.socket | None = None
        self.board: Any = None
        self.server: Any = None
        if edges.redirect_port is not None:
            self.redirect = reserve_port(host, edges.redirect_port)
        if edges.metrics:
            self.board = metrics.Board.create(workers)
            sock = metrics.listen_metrics(edges.metrics_host or host, edges.metrics_port)
            self.server = metrics.MetricsServer(self.board, sock)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.board.fd,) if self.board is not None else ()

    def worker_args(self, index: int) -> list[str]:
        edges = self.edges
        redirect = self.redirect.getsockname()[1] if self.redirect else None
        return worker_args(edges, redirect, self.board.fd if self.board else None, index)

    def announce(self) -> None:
        if self.server is not None:
            _say(f"router metrics on http://{self.edges.metrics_host}:{self.server.port}")
        if self.redirect is not None:
            _say(f"router redirecting http://{self.host}:{self.redirect.getsockname()[1]}")

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.redirect is not None:
            self.redirect.close()


def worker_args(
    edges: EdgeConfig, redirect_port: int | None, metrics_fd: int | None, index: int
) -> list[str]:
    """The edge options again, for a worker command line (ports resolved)."""
    limits = edges.limits
    args = [
        "--connect-timeout",
        str(limits.connect_timeout),
        "--idle-timeout",
        str(limits.idle_timeout),
        "--head-timeout",
        str(limits.head_timeout),
        "--max-body-size",
        str(limits.max_body),
        "--hsts-max-age",
        str(edges.hsts_max_age),
        "--worker-index",
        str(index),
    ]
    if edges.tls_cert and edges.tls_key:
        args += ["--tls-cert", edges.tls_cert, "--tls-key", edges.tls_key]
    if redirect_port is not None:
        args += ["--redirect-port", str(redirect_port)]
    if edges.subdomain_host:
        args += ["--subdomain-host", edges.subdomain_host]
    if edges.public_scheme:
        args += ["--public-scheme", edges.public_scheme]
    if metrics_fd is not None:
        args += ["--metrics-listen", f"{edges.metrics_host}:0", "--metrics-fd", str(metrics_fd)]
    return args


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- worker side ----------------------------------------------------------------------


class EdgeWorker:
    """A worker's share of the edges: add-ons around RouterAddon, the TLS context
    for the public socket, the redirect listener and the metrics heartbeat."""

    def __init__(self, edges: EdgeConfig, host: str, *, supervised: bool) -> None:
        self.edges, self.host, self.supervised = edges, host, supervised
        self.ssl = tls_context(edges.tls_cert, edges.tls_key) if edges.tls_cert else None
        self.board: Any = None
        self.metrics_server: Any = None
        self.metrics_addon: Any = None  # also counts for the native relay
        self.subdomains = (
            SubdomainRouting(edges.subdomain_host, edges.redirect_scheme)
            if edges.subdomain_host
            else None
        )
        if edges.metrics:
            from routing.router import metrics

            if edges.metrics_fd is not None:
                self.board = metrics.Board.attach(edges.metrics_fd, edges.worker_index + 1)
            else:  # a lone worker serves its own metrics port
                self.board = metrics.Board.create(1, shared=False)
                sock = metrics.listen_metrics(edges.metrics_host or host, edges.metrics_port)
                self.metrics_server = metrics.MetricsServer(self.board, sock)

    def addons_before(self) -> list[Any]:
        return [self.subdomains] if self.subdomains is not None else []

    def addons_after(self) -> list[Any]:
        found: list[Any] = []
        if self.edges.tls:
            found.append(TlsMarks(self.edges.hsts_max_age))
        if self.board is not None:
            from routing.router import metrics

            self.metrics_addon = metrics.MetricsAddon(self.board, self.edges.worker_index)
            found.append(self.metrics_addon)
        return found

    @property
    def hsts(self) -> str:
        """The Strict-Transport-Security value the relay adds ('' = none)."""
        if self.edges.tls and self.edges.hsts_max_age:
            return f"max-age={self.edges.hsts_max_age}"
        return ""

    async def start(self, sync: Any, public_port: int) -> list[asyncio.Task[Any]]:
        """Background work of the edges; returns the tasks to cancel at shutdown."""
        tasks: list[asyncio.Task[Any]] = []
        loop = asyncio.get_running_loop()
        if self.supervised:
            die_with_parent()
        if self.board is not None:
            from routing.router import metrics

            beat = metrics.heartbeat_forever(self.board, self.edges.worker_index, sync)
            tasks.append(loop.create_task(beat))
        if self.metrics_server is not None:
            _say(f"router metrics on http://{self.edges.metrics_host}:{self.metrics_server.port}")
        if self.edges.redirect_port is not None:
            sock = reserve_port(self.host, self.edges.redirect_port)
            sock.listen(256)
            handler = _redirect_handler(public_port)
            tasks.append(loop.create_task(_serve_redirects(sock, handler)))
            if not self.supervised:
                _say(f"router redirecting http://{self.host}:{sock.getsockname()[1]}")
        return tasks


def die_with_parent() -> None:
    """A worker must not outlive its supervisor (kill -9 included): ask Linux for
    SIGTERM when the parent goes, and leave now if it already went."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.warning("cannot tie the worker's life to the supervisor (no prctl)")
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


# --- add-ons --------------------------------------------------------------------------


class TlsMarks:
    """TLS is terminated by asyncio's SSL transport before mitmproxy sees the
    stream, so mark the client as TLS (X-Forwarded-Proto: https) and add HSTS."""

    def __init__(self, hsts_max_age: int) -> None:
        self.hsts = f"max-age={hsts_max_age}" if hsts_max_age else ""

    def client_connected(self, client: Any) -> None:
        client.timestamp_tls_setup = time.time()

    def responseheaders(self, flow: Any) -> None:
        if self.hsts and flow.response is not None:
            flow.response.headers["Strict-Transport-Security"] = self.hsts


class SubdomainRouting:
    """Runs before RouterAddon; see the module docstring for the rules."""

    def __init__(self, domain: str, scheme: str) -> None:
        self.domain = domain
        self.suffix = "." + domain
        self.scheme = scheme

    def label(self, host: str) -> str:
        """'alice' for 'alice.hub.example.org' (a bare name, lowercased), else ''."""
        label = host[: -len(self.suffix)] if host.endswith(self.suffix) else ""
        return label if "." not in label else ""

    def serves_here(self, host_header: str, user: str) -> bool:
        """The one case the native relay forwards itself: /user/<name>/ on <name>'s
        own host. Every other /user/ request goes to mitmproxy and this add-on."""
        return self.label(split_host(host_header)[0]) == user

    def requestheaders(self, flow: Any) -> None:
        from mitmproxy import exceptions, http

        from routing.router.table import PathKind, classify

        request = flow.request
        where = classify(request.path)
        if where.kind != PathKind.USER:
            return  # hub paths go to the hub, bad paths are refused by RouterAddon
        host, port = split_host(request.host_header or "")
        label = self.label(host)
        if label:
            if where.user != label:
                flow.response = http.Response.make(
                    404,
                    f"{host} serves /user/{label}/ only\n",
                    {"Content-Type": "text/plain"},
                )
                raise exceptions.AddonHalt
            return  # the user's own host: RouterAddon routes it
        if is_dns_label(where.user):
            location = f"{self.scheme}://{where.user}{self.suffix}{port}{request.path}"
            flow.response = http.Response.make(302, b"", {"Location": location})
            raise exceptions.AddonHalt
        request.path = "/hub" + request.path  # no host for this name: the hub's page


def split_host(host_header: str) -> tuple[str, str]:
    """('alice.hub.example.org', ':8443') from 'Alice.hub.example.org:8443'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1], host[end + 1 :]
    name, sep, port = host.partition(":")
    return name.rstrip("."), (sep + port if port.isdigit() else "")


# --- the HTTP -> HTTPS redirect port --------------------------------------------------

_MAX_HEAD = 16 * 1024


def _redirect_handler(public_port: int) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status, headers = redirect_answer(head.decode("latin-1"), public_port)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, headers = "400 Bad Request", {}
        except ConnectionError:
            writer.close()
            return
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
        lines += ["Content-Length: 0", "Connection: close", "", ""]
        try:
            writer.write("\r\n".join(lines).encode("latin-1"))
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    return handle


def redirect_answer(head: str, public_port: int) -> tuple[str, dict[str, str]]:
    """Status line and headers for one plain-HTTP request on the redirect port:
    the same host and path over HTTPS (308 keeps the method of non-GETs)."""
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or parts[1].startswith("//"):
        return "400 Bad Request", {}
    method, target = parts[0], parts[1]
    host = next(
        (line.split(":", 1)[1].strip() for line in lines[1:] if line[:5].lower() == "host:"), ""
    )
    if not _HOST.match(host):
        return "400 Bad Request", {}
    name, _ = split_host(host)
    port = "" if public_port == 443 else f":{public_port}"
    status = "301 Moved Permanently" if method in ("GET", "HEAD") else "308 Permanent Redirect"
    return status, {"Location": f"https://{name}{port}{target}"}


async def _serve_redirects(sock: socket.socket, handler: Any) -> None:
    server = await asyncio.start_server(handler, sock=sock, limit=_MAX_HEAD)
    async with server:
        await server.serve_forever()
