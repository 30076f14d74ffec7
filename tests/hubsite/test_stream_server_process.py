"""`python -m hubsite.streams` as a process: its quieter main loop (one
wake-up a second instead of uvicorn's ten) still serves with a fresh Date
header, still stops at once on SIGTERM, and still fails loudly when its port
is taken."""

from __future__ import annotations

import email.utils
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from tests.hubsite.test_make_run import free_port
from tests.live import ROOT, wait_for
from tests.scheduler.processes import process_env

pytestmark = pytest.mark.django_db(transaction=True)


def start_stream_server(url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hubsite.streams"],
        cwd=ROOT,
        env=process_env({"HUB_STREAM_URL": url, "HUB_LOG_LEVEL": "INFO"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.fixture
def stream_server() -> Iterator[tuple[str, subprocess.Popen]]:
    url = f"http://127.0.0.1:{free_port()}"
    proc = start_stream_server(url)
    try:
        wait_for(lambda: _status(url) == 200, timeout=60, what="the stream server")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _status(url: str) -> int | None:
    try:
        return requests.get(f"{url}/hub/api", timeout=2).status_code
    except requests.RequestException:
        return None


def test_the_stream_server_keeps_its_date_header_current(stream_server):
    url, _ = stream_server
    first = email.utils.parsedate_to_datetime(requests.get(f"{url}/hub/api").headers["Date"])
    time.sleep(2.2)  # the header is refreshed once a second
    later = email.utils.parsedate_to_datetime(requests.get(f"{url}/hub/api").headers["Date"])
    assert (later - first).total_seconds() >= 2


def test_the_stream_server_stops_cleanly_on_sigterm(stream_server):
    url, proc = stream_server
    proc.send_signal(signal.SIGTERM)
    # the signal wakes its loop, which no longer sleeps a second at a time
    # unawares; uvicorn shuts down, then re-raises the signal it caught
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGTERM
    assert b"Finished server process" in err
    assert _status(url) is None


def test_the_stream_server_exits_with_an_error_when_its_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = start_stream_server(f"http://127.0.0.1:{taken.getsockname()[1]}")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"address already in use" in err.lower()
