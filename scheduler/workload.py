"""What a running server is doing, asked of the server itself: its kernels
(busy or not, last activity) and terminals, from Jupyter Server's REST API.

Only the server's URL, its prefix and its own API token are used, so this
works for any spawner (a local process or a pod). The token is the one the
server was started with (JUPYTERHUB_API_TOKEN): jupyterhub-singleuser accepts
it for its own API (kept sealed on the row, servers/services/credentials.py).

`?no_track_activity=1` keeps these requests from counting as activity on the
server (Jupyter Server's own rule), so asking never keeps a server alive.
"""

from __future__ import annotations

import logging
from datetime import datetime

import requests
from django.utils.dateparse import parse_datetime

from scheduler.culling import Workload

log = logging.getLogger(__name__)

BUSY = {"busy", "starting", "restarting"}


def _newest(items: list[dict], key: str = "last_activity") -> datetime | None:
    times = [parse_datetime(i[key]) for i in items if isinstance(i.get(key), str)]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def read_workload(
    base_url: str,
    prefix: str,
    token: str,
    *,
    session: requests.Session | None = None,
    terminals: bool = True,
    timeout: float = 5.0,
) -> Workload | None:
    """Ask the server at BASE_URL+PREFIX about its kernels (and terminals);
    None when it does not answer sensibly: the culler then decides on the
    hub's own activity, as jupyterhub-idle-culler always does."""
    http = session or requests.Session()
    headers = {"Authorization": f"token {token}"}
    params = {"no_track_activity": "1"}
    api = f"{base_url.rstrip('/')}{prefix}api"
    try:
        response = http.get(f"{api}/kernels", headers=headers, params=params, timeout=timeout)
        if response.status_code != 200:
            log.info("kernels of %s: HTTP %s", prefix, response.status_code)
            return None
        kernels = [k for k in response.json() if isinstance(k, dict)]
        terminal_list: list[dict] = []
        if terminals:
            response = http.get(f"{api}/terminals", headers=headers, params=params, timeout=timeout)
            if response.status_code == 200:  # 404: terminals are off on that server
                terminal_list = [t for t in response.json() if isinstance(t, dict)]
    except (requests.RequestException, ValueError) as exc:
        log.info("could not read the workload of %s: %s", prefix, exc)
        return None
    return Workload(
        busy=any(k.get("execution_state") in BUSY for k in kernels),
        kernel_activity=_newest(kernels),
        terminal_activity=_newest(terminal_list),
    )
