"""The stream server as `make run` runs it: the hub under gunicorn, the
stream server under uvicorn (`python -m hubsite.streams`), the router sending
progress paths to it. Hundreds of open progress streams, many times the hub's
threads, leave the API answering, and each stream ends with the event the
database says. (How API latency moves with 1,000 streams is measured in
bench/progress_streams.py, not asserted here.)"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from hubsite.asgi import REQUEST_THREADS
from servers.models import Server, ServerEvent
from tests.factories import ServerFactory
from tests.hubsite.test_make_run import free_port
from tests.live import ROOT, launch_router, wait_for
from tests.scheduler.processes import HubProcess, process_env

pytestmark = pytest.mark.django_db(transaction=True)

Kind = ServerEvent.Kind
HUB_THREADS = 2 * 8  # HubProcess: 2 gunicorn workers of 8 threads
STREAMS = 300


@dataclass
class StreamServer:
    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def platform(alice) -> Iterator[tuple[HubProcess, StreamServer, str]]:
    hub = HubProcess(port=free_port(), env=process_env())
    stream_url = f"http://127.0.0.1:{free_port()}"
    streams = StreamServer(
        stream_url,
        subprocess.Popen(
            [sys.executable, "-m", "hubsite.streams"],
            cwd=ROOT,
            env=process_env({"HUB_STREAM_URL": stream_url, "HUB_LOG_LEVEL": "WARNING"}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
    )
    hub.start()
    router = None
    try:
        wait_for(lambda: _answers(stream_url), timeout=60, what="the stream server")
        extra = ["--stream-url", stream_url]
        router = launch_router(hub.url, settings.HUB_ROUTER_TOKEN, extra=extra, hub_wakes=True)
        yield hub, streams, router.url
    finally:
        if router is not None:
            router.stop()
        streams.stop()
        hub.kill()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/hub/api", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def open_stream(router_url: str, path: str, token: str) -> socket.socket:
    host, port = router_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: token {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def database_connections(pid: int) -> int:
    """The database connections process PID holds: open files of the SQLite
    database, or TCP sockets to PostgreSQL's port."""
    database = connection.settings_dict
    fds = Path(f"/proc/{pid}/fd")
    links = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            links.append(os.readlink(fd))
    if connection.vendor == "sqlite":
        return sum(1 for link in links if link == str(database["NAME"]))
    port = int(database.get("PORT") or 5432)
    sockets = {link[8:-1] for link in links if link.startswith("socket:[")}
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in sockets:
                count += 1
    return count


def test_hundreds_of_progress_streams_leave_the_api_answering(platform, alice, token_for):
    _, stream_server, router_url = platform
    server = ServerFactory(user=alice, state=Server.State.STARTING)
    ServerEvent.objects.create(server=server, kind=Kind.START_REQUESTED, message="Server requested")
    token = token_for(alice, None)
    path = "/hub/api/users/alice/server/progress"
    streams = [open_stream(router_url, path, token) for _ in range(STREAMS)]
    try:
        for sock in streams:  # every one is open and has had the start's first event
            head = read_until(sock, b"Server requested")
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            assert b"text/event-stream" in head
        # far more streams than the hub has threads, and the API still answers
        assert STREAMS > 10 * HUB_THREADS
        # and the streams hold neither a thread nor a database connection each
        pid = stream_server.proc.pid
        assert len(os.listdir(f"/proc/{pid}/task")) <= REQUEST_THREADS + 8
        assert database_connections(pid) <= REQUEST_THREADS + 1  # the pool's and the feed's
        auth = {"Authorization": f"token {token}"}
        for _ in range(20):
            answer = requests.get(f"{router_url}/hub/api/users/alice", headers=auth, timeout=10)
            assert answer.status_code == 200
            assert answer.json()["pending"] == "spawn"
        ServerEvent.objects.create(server=server, kind=Kind.PROGRESS, progress=50, message="half")
        ServerEvent.objects.create(server=server, kind=Kind.READY, progress=100, message="ready")
        for sock in streams:
            tail = read_until(sock, b'"ready": true')
            assert b'"progress": 50' in tail and b'"ready": true' in tail
    finally:
        for sock in streams:
            sock.close()


def test_the_stream_server_refuses_what_the_hub_refuses(platform, alice, bob, token_for):
    _, streams, router_url = platform
    ServerFactory(user=alice, state=Server.State.STARTING)
    path = "/hub/api/users/alice/server/progress"
    for url in (router_url, streams.url):
        forged = requests.get(url + path, headers={"Authorization": "token forged"}, timeout=10)
        assert forged.status_code == 403
        assert forged.json()["message"] == "Invalid or expired token"
        other = requests.get(
            url + path, headers={"Authorization": f"token {token_for(bob, None)}"}, timeout=10
        )
        assert other.status_code == 403
        missing = requests.get(
            url + "/hub/api/users/nobody/server/progress",
            headers={"Authorization": f"token {token_for(alice, None)}"},
            timeout=10,
        )
        assert missing.status_code in (403, 404)
