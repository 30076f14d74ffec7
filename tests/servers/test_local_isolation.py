"""A user's kernel, reached as a user reaches it (through the router, kernel
messages over a real websocket), tries to take the hub's secrets and database.
regression: issue 8 finding 3 (local servers ran as the hub's OS user)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings

from servers.spawners.isolation import account_name
from tests.servers.test_singleuser_e2e import _execute

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# what the kernel runs: each attempt's outcome, "ok" only if it succeeded
PROBE = """
import ctypes, json, os
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
data = {data!r}
paths = {paths!r}
# first lift the tmpfs that covers the data dir (root in a sandbox could, with capabilities)
libc = ctypes.CDLL(None, use_errno=True)
out = {{"umount": "ok" if libc.umount2(data.encode(), 2) == 0 else "refused"}}
out.update({{p: attempt(lambda p=p: open(p, "rb").read(1)) for p in paths}})
out["write " + paths[-1]] = attempt(lambda: open(paths[-1], "r+b").write(b"x"))
try:
    listing = sorted(os.listdir(data))
except OSError as exc:
    listing = type(exc).__name__
out["uid"] = os.getuid()
out["env"] = sorted(os.environ)
out["data dir holds"] = listing
json.dumps(out)
"""


def database_file() -> Path:
    """The file the hub's data lives in (the data dir itself on PostgreSQL,
    which a kernel must not be able to write into either)."""
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"]:
        return Path(db.get("TEST", {}).get("NAME") or db["NAME"])
    return Path(settings.HUB_DATA_DIR) / "hub.sqlite3"


def probe_kernel(user, token: str, router_url: str) -> dict:
    data = Path(settings.HUB_DATA_DIR)
    paths = [str(data / "secret_key"), str(data / "router_token"), str(database_file())]
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(
        f"{router_url}/user/{user.username}/api/kernels", headers=headers, json={}, timeout=60
    )
    assert kernel.status_code == 201, kernel.text
    ws_url = router_url.replace("http", "ws", 1) + (
        f"/user/{user.username}/api/kernels/{kernel.json()['id']}/channels"
        f"?session_id={uuid.uuid4().hex}"
    )
    code = PROBE.format(data=str(data), paths=paths)
    return json.loads(asyncio.run(_execute(ws_url, token, code)).strip("'"))


def assert_refused(outcome: dict) -> None:
    """No hub variable in the kernel's environment (its own token only); no
    attempt on the data dir succeeded; the data dir shows only the homes."""
    env = outcome.pop("env")
    assert not [k for k in env if k.startswith(("HUB_", "DJANGO", "DATABASE"))]
    assert "JUPYTERHUB_API_TOKEN" in env
    assert outcome.pop("data dir holds") in (["homes"], "PermissionError")
    outcome.pop("uid")
    assert "ok" not in outcome.values(), outcome


@pytest.fixture(params=[True, False], ids=["forked", "execd"])
def prefork(request, settings) -> bool:
    """Both ways a server starts: forked by the zygote and confined by its
    child (servers/spawners/namespaces.py), or exec'd in bubblewrap."""
    settings.HUB_LOCAL_PREFORK = request.param
    return request.param


@pytest.mark.skipif(os.geteuid() != 0, reason="users mode needs the hub to run as root")
def test_kernel_as_own_account_cannot_read_secrets_or_write_database(
    settings, alice, token_for, start_server, router, prefork
):
    settings.HUB_LOCAL_ISOLATION = "users"
    server = start_server(alice)
    assert bool(server.spawner_state.get("forked")) is prefork
    outcome = probe_kernel(alice, token_for(alice), router.url)
    account = pwd.getpwnam(account_name("alice", prefix=settings.HUB_LOCAL_ACCOUNT_PREFIX))
    assert outcome["uid"] == account.pw_uid != 0
    assert_refused(outcome)


def test_sandboxed_kernel_does_not_see_the_data_dir(
    settings, alice, token_for, start_server, router, prefork
):
    settings.HUB_LOCAL_ISOLATION = "sandbox"
    server = start_server(alice)
    assert bool(server.spawner_state.get("forked")) is prefork
    outcome = probe_kernel(alice, token_for(alice), router.url)
    assert_refused(outcome)
    # hidden, not merely unreadable: an empty tmpfs with only the homes mounted back
    assert {v for k, v in outcome.items() if k.startswith("/")} == {"FileNotFoundError"}
