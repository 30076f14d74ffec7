"""The real jupyterhub-idle-culler (PyPI, in .venv-culler, made by `make test`)
against our hub's REST API: it still culls an idle server and leaves an
active one, as it does on JupyterHub."""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from servers.models import Server
from tests.live import ROOT, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
CULLER = ROOT / ".venv-culler" / "bin" / "jupyterhub-idle-culler"


def keep_active(api: str, token: str, name: str, stop: threading.Event) -> None:
    """What the server's own activity reports do, every 0.5 s."""
    while not stop.wait(0.5):
        now = datetime.now(UTC).isoformat()
        requests.post(
            f"{api}/users/{name}/activity",
            headers={"Authorization": f"token {token}"},
            json={"last_activity": now, "servers": {"": {"last_activity": now}}},
            timeout=10,
        )


def test_the_real_idle_culler_stops_an_idle_server_and_leaves_an_active_one(
    alice, bob, admin, token_for, start_server, live_hub, tmp_path: Path
):
    assert CULLER.exists(), "run `make test` (or `make .venv-culler/.installed`)"
    idle = start_server(alice)
    active = start_server(bob)
    stop = threading.Event()
    reporter = threading.Thread(
        target=keep_active, args=(live_hub.api, token_for(bob), "bob", stop), daemon=True
    )
    reporter.start()
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": token_for(admin)}
    log_path = tmp_path / "culler.log"
    with open(log_path, "w") as log:
        culler = subprocess.Popen(
            [str(CULLER), f"--url={live_hub.api}", "--timeout=4", "--cull-every=1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: Server.objects.get(pk=idle.pk).state == Server.State.STOPPED,
            timeout=60,
            what="the external culler to stop alice's idle server",
        )
        assert Server.objects.get(pk=active.pk).state == Server.State.RUNNING
    finally:
        culler.terminate()
        culler.wait(10)
        stop.set()
        reporter.join()
    output = log_path.read_text()
    assert "Culling server alice" in output, output
    assert "Culling server bob" not in output
