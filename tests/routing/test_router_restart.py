"""A router worker restarted while the hub is down (reliability.md §3): it
starts from the table its siblings saved, and listens only once it has it, so
no request for a known user's route goes to the dead hub."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.live import wait_for
from tests.routing.test_router_e2e import who


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def listens(pid: int, port: int) -> bool:
    """PID holds a socket listening on PORT (it is in the SO_REUSEPORT group)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "0A" and fields[9] in inodes:
            return True
    return False


def saved_routes(path: Path) -> dict:
    try:
        return json.loads(path.read_text())["routes"]
    except (OSError, ValueError):
        return {}


def test_a_worker_restarted_while_the_hub_is_down_serves_the_last_table(
    tmp_path, hub_state, fake_hub, backend, start_router
):
    alice = backend("alice")
    hub_state.set_route("/user/alice/", alice.url)
    router = start_router(workers=2, extra=["--state-dir", str(tmp_path)])
    snapshot = tmp_path / f"routes-{router.port}.json"
    wait_for(lambda: "/user/alice/" in saved_routes(snapshot), timeout=10, what="a snapshot")
    assert who(router, "/user/alice/") == "alice"

    fake_hub.stop()  # the hub is down from here on
    workers = children(router.proc.pid)
    assert len(workers) == 2
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    restarted = wait_for(
        lambda: (children(router.proc.pid) - workers) or None, timeout=10, what="a new worker"
    )
    (new,) = restarted
    wait_for(lambda: listens(new, router.port), timeout=20, what="the new worker to listen")

    # 60 new connections, spread over both workers by the kernel's SO_REUSEPORT
    # hash: every one reaches alice's server, none the dead hub
    answers = [who(router, f"/user/alice/api/{i}") for i in range(60)]
    assert answers == ["alice"] * 60
