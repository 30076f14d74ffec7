"""`python -m routing.router`: the public-port daemon.

    python -m routing.router --listen 127.0.0.1:8000 --hub-url http://127.0.0.1:8081 \
        [--token-file PATH] [--workers N] [--state-dir DIR]

With N > 1 (default: number of cores) this process only supervises N worker
processes that share the port through SO_REUSEPORT, each with its own route
table synced from the hub; a worker that dies is restarted. Workers save the
table they synced under --state-dir, and a worker (re)started while the hub is
down starts from that file; a worker listens only once it has a table. Workers run with
`python -O`: mitmproxy's per-field type checks are asserts (~12% of its CPU).
Logs "router listening on http://HOST:PORT" on stderr once every worker listens.

In a worker, each public connection starts in the native HTTP/1.1 relay
(routing/router/relay.py), which hands anything but ordinary requests to a
minimal mitmproxy master (proxyserver + RouterAddon), still behind its parser
and limits (routing/router/handoff.py); HUB_ROUTER_RELAY=0 hands every
connection over at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from routing.router import edges as edge
from routing.router.hubs import HubPool, split_urls
from routing.router.sockets import reserve_port

log = logging.getLogger("routing.router")


@dataclass
class Config:
    host: str
    port: int
    hub_url: str
    token: str
    workers: int
    stream_url: str = ""  # "" = progress streams go to the hub too
    activity_interval: float = 5.0
    ready_fd: int | None = None
    state_dir: str = "data/router"
    wake_file: str = ""  # "" = not watched
    edges: edge.EdgeConfig = field(default_factory=edge.EdgeConfig)


def parse_args(argv: list[str]) -> Config:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m routing.router", description=__doc__)
    parser.add_argument(
        "--listen",
        default=env.get("HUB_ROUTER_LISTEN", "127.0.0.1:8000"),
        help="HOST:PORT of the public port (env HUB_ROUTER_LISTEN)",
    )
    parser.add_argument(
        "--hub-url",
        default=env.get("HUB_CONNECT_URL") or env.get("HUB_BIND_URL", "http://127.0.0.1:8081"),
        help="where the hub answers (env HUB_CONNECT_URL, else HUB_BIND_URL); several hubs "
        "on one database as URL,URL,...: the first that takes connections is used",
    )
    parser.add_argument(
        "--stream-url",
        default=env.get("HUB_STREAM_URL", ""),
        help="where the hub's stream server answers, for spawn-progress streams "
        "(env HUB_STREAM_URL; default: the hub); several as URL,URL,...",
    )
    parser.add_argument("--token-file", help="file holding the router token")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes sharing the port"
    )
    parser.add_argument(
        "--activity-interval",
        type=float,
        default=5.0,
        help="seconds between activity reports to the hub",
    )
    parser.add_argument(
        "--state-dir",
        default=env.get("HUB_ROUTER_STATE_DIR")
        or str(Path(env.get("HUB_DATA_DIR", "data")) / "router"),
        help="where workers keep the last good route table, for a worker started while "
        "the hub is down (env HUB_ROUTER_STATE_DIR; default HUB_DATA_DIR/router)",
    )
    parser.add_argument(
        "--wake-file",
        default=env.get("HUB_ROUTE_WAKE_FILE")
        or str(Path(env.get("HUB_DATA_DIR", "data")) / "run" / "routes-changed"),
        help="the file the hub rewrites on every route change, watched to pull at once "
        "(env HUB_ROUTE_WAKE_FILE; default HUB_DATA_DIR/run/routes-changed; '' = off)",
    )
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)  # worker -> supervisor
    edge.add_arguments(parser)
    args = parser.parse_args(argv)
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit():
        parser.error(f"--listen must be HOST:PORT, not {args.listen!r}")
    for option, value, required in (
        ("--hub-url", args.hub_url, True),
        ("--stream-url", args.stream_url, False),
    ):
        why = url_list_error(value, required=required)
        if why:
            parser.error(f"{option}: {why}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        token = read_token(args.token_file)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    return Config(
        host=host.strip("[]") or "0.0.0.0",
        port=int(port),
        hub_url=",".join(split_urls(args.hub_url)),
        token=token,
        stream_url=",".join(split_urls(args.stream_url)),
        workers=args.workers,
        activity_interval=args.activity_interval,
        ready_fd=args.ready_fd,
        state_dir=args.state_dir,
        wake_file=args.wake_file,
        edges=edge.from_args(args, parser),
    )


def url_list_error(value: str, *, required: bool) -> str:
    """Why VALUE (URL or URL,URL,...) cannot name hubs; "" when it can."""
    urls = split_urls(value)
    if not urls:
        return "needs an http(s) URL" if required else ""
    schemes = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{url!r} is not an http(s) URL"
        schemes.add(parts.scheme)
    return "all URLs must have one scheme" if len(schemes) > 1 else ""


def upstreams(value: str) -> HubPool[Any] | None:
    """The pool of hubs (or stream servers) VALUE names, as the add-on's
    Upstreams (which import mitmproxy: workers only); None for ""."""
    from routing.router.addon import Upstream

    found = []
    for url in split_urls(value):
        parts = urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        found.append(Upstream(parts.scheme, parts.hostname or "", parts.port or default_port))
    return HubPool(found) if found else None


def read_token(token_file: str | None) -> str:
    """--token-file, else HUB_ROUTER_TOKEN, else HUB_ROUTER_TOKEN_FILE, else
    HUB_DATA_DIR/router_token (the file the hub persists; default ./data)."""
    env = os.environ
    if not token_file and env.get("HUB_ROUTER_TOKEN"):
        return env["HUB_ROUTER_TOKEN"].strip()
    path = Path(
        token_file
        or env.get("HUB_ROUTER_TOKEN_FILE")
        or Path(env.get("HUB_DATA_DIR", "data")) / "router_token"
    )
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"router token file {path} is empty")
    return token


# --- supervisor (no mitmproxy import here) --------------------------------------------


BACKLOG = 1024


def listen_socket(host: str, port: int) -> socket.socket:
    """The worker's own listening socket, bound before mitmproxy is even imported
    so a taken port fails fast; SO_REUSEPORT lets workers share it."""
    sock = reserve_port(host, port)
    sock.listen(BACKLOG)
    return sock


def worker_command(config: Config, port: int, ready_fd: int) -> list[str]:
    return [
        sys.executable,
        "-O",
        "-m",
        "routing.router",
        "--listen",
        f"{config.host}:{port}",
        "--hub-url",
        config.hub_url,
        "--stream-url",
        config.stream_url,
        "--workers",
        "1",
        "--activity-interval",
        str(config.activity_interval),
        "--ready-fd",
        str(ready_fd),
        "--state-dir",
        config.state_dir,
    ]


def supervise(config: Config) -> int:
    try:
        reserved = reserve_port(config.host, config.port)
    except OSError as exc:
        print(f"router: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    port = reserved.getsockname()[1]
    read_end, write_end = os.pipe()
    env = {**os.environ, "HUB_ROUTER_TOKEN": config.token}
    command = worker_command(config, port, write_end)
    try:
        edges = edge.EdgeSupervisor(config.edges, config.host, config.workers)
    except OSError as exc:
        print(f"router: cannot listen for metrics/redirects: {exc}", file=sys.stderr)
        return 1
    fds = (write_end, *edges.pass_fds)
    start = lambda i: subprocess.Popen(command + edges.worker_args(i), env=env, pass_fds=fds)  # noqa: E731
    workers = [start(i) for i in range(config.workers)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready = 0
    while not stopping:
        readable, _, _ = select.select([read_end], [], [], 0.5)
        if readable:
            ready += len(os.read(read_end, 64))
            if ready == config.workers:
                edges.announce()
                scheme = config.edges.scheme
                print(
                    f"router listening on {scheme}://{config.host}:{port}",
                    file=sys.stderr,
                    flush=True,
                )
        for i, proc in enumerate(workers):
            if proc.poll() is not None and not stopping:
                log.warning(
                    "router worker %s exited with %s; restarting", proc.pid, proc.returncode
                )
                time.sleep(0.5)
                workers[i] = start(i)
    for proc in workers:
        proc.terminate()
    for proc in workers:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    reserved.close()
    edges.close()
    return 0


# --- one worker: a minimal mitmproxy master -------------------------------------------


async def serve(config: Config, sock: socket.socket) -> None:
    from mitmproxy import master, options
    from mitmproxy.addons import proxyserver
    from mitmproxy.proxy import mode_specs
    from mitmproxy.proxy.mode_servers import ServerInstance

    from routing.router.addon import RouterAddon
    from routing.router.client import HubClient, RouteSync, SyncPolicy
    from routing.router.snapshot import Snapshot
    from routing.router.strict_answers import install as strict_answers

    strict_answers()  # servers' answers to mitmproxy pass the relay's parser too
    upstream = upstreams(config.hub_url)
    assert upstream is not None  # parse_args requires one
    streams = upstreams(config.stream_url)
    policy = SyncPolicy(activity_every=config.activity_interval)
    snapshot = Snapshot(Path(config.state_dir), sock.getsockname()[1])
    sync = RouteSync(HubClient(config.hub_url, config.token), policy=policy, snapshot=snapshot)
    sync.wake_file = Path(config.wake_file) if config.wake_file else None
    opts = options.Options()
    proxy = master.Master(opts)
    server_addon = proxyserver.Proxyserver()
    edges = edge.EdgeWorker(config.edges, config.host, supervised=config.ready_fd is not None)
    proxy.addons.add(
        server_addon,
        *edges.addons_before(),
        RouterAddon(
            sync, upstream, connect_timeout=config.edges.limits.connect_timeout, streams=streams
        ),
        *edges.addons_after(),
    )
    # No mitmproxy-managed listener (mode=[]): we bind ourselves with SO_REUSEPORT.
    opts.update(
        mode=[],
        connection_strategy="lazy",
        keep_host_header=True,
        http2=False,
        http3=False,
        rawtcp=False,
    )
    spec = mode_specs.ProxyMode.parse(f"reverse:{split_urls(config.hub_url)[0]}")
    instance = ServerInstance.make(spec, server_addon)
    try:
        await asyncio.wait_for(sync.sync_once(), timeout=5)
    except Exception as exc:  # the hub may be down: the last good table, else none
        if not sync.restore():
            log.warning("starting without a route table (%s); will keep trying", exc)
    callback = connection_callback(proxy, instance)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancellations)
    background = [
        loop.create_task(sync.sync_forever()),
        loop.create_task(sync.report_activity_forever()),
    ]
    if sync.wake_file is not None:
        from routing.router import wakefile

        background.append(loop.create_task(wakefile.watch_forever(sync.wake_file, sync)))
    if redis_url := os.environ.get("HUB_REDIS_URL"):
        from routing.router import wakeup

        background.append(loop.create_task(wakeup.listen_forever(redis_url, sync)))
    from routing.router.relay import Counters, Relay

    relay = Relay(
        sync,
        upstream,
        callback,
        counters=Counters(edges.metrics_addon),
        hsts=edges.hsts,
        serves_here=edges.subdomains.serves_here if edges.subdomains else None,
        limits=config.edges.limits,
        native=os.environ.get("HUB_ROUTER_RELAY", "1") != "0",
        streams=streams,
    )
    listener = await loop.create_server(relay.protocol, sock=sock, ssl=edges.ssl, backlog=BACKLOG)
    background.append(loop.create_task(relay.sweep_idle_forever()))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, proxy.shutdown)
    port = listener.sockets[0].getsockname()[1]
    background += await edges.start(sync, port)
    if config.ready_fd is not None:
        os.write(config.ready_fd, b"1")
    else:
        scheme = config.edges.scheme
        print(f"router listening on {scheme}://{config.host}:{port}", file=sys.stderr, flush=True)
    gc.collect()
    gc.freeze()  # startup objects never need scanning again
    gc.set_threshold(20_000, 20, 20)
    try:
        await proxy.run()
    finally:
        listener.close()
        for task in background:
            task.cancel()
        await sync.report_activity_once()


def use_event_loop_policy() -> None:
    """uvloop (libuv) when installed: less event-loop overhead per socket event;
    HUB_ROUTER_UVLOOP=0 keeps asyncio's own loop."""
    if os.environ.get("HUB_ROUTER_UVLOOP", "1") == "0":
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def connection_callback(proxy: Any, instance: Any) -> Callable[..., Awaitable[None]]:
    """mitmproxy's own per-connection handler, or (default) the cheaper hook
    dispatch of routing.router.fastpath; HUB_ROUTER_FASTPATH=0 turns it off."""
    if os.environ.get("HUB_ROUTER_FASTPATH", "1") == "0":
        return instance.handle_stream
    from routing.router import fastpath

    fastpath.check_version()
    return fastpath.handle_stream(instance, fastpath.HookTable(proxy.addons.chain))


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Connections cancelled at shutdown are expected, not errors."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(levelname)s %(message)s")
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    config = parse_args(args)
    if config.workers > 1:
        return supervise(config)
    if not sys.flags.optimize and os.environ.get("HUB_ROUTER_NO_OPTIMIZE") != "1":
        os.execv(sys.executable, [sys.executable, "-O", "-m", "routing.router", *args])
    try:
        # bound now, so a taken port fails fast, but listening only once the worker
        # has a table and can answer (serve): until then the kernel hands new
        # connections to its siblings instead of queueing them here
        sock = reserve_port(config.host, config.port)
    except OSError as exc:
        print(f"router: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    use_event_loop_policy()
    asyncio.run(serve(config, sock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
