"""A router worker SIGKILLed under load: how long new connections stall while
the supervisor restarts it, before (the branch point on main) and after.

Per tree: the fake hub and a backend of tests/routing/fakes.py (real HTTP
servers), `python -m routing.router --workers 2` from that tree, 4 client
threads each making requests on new connections to /user/alice/; one worker
is SIGKILLed and the next 4 s are reported: requests, failures (connections
the killed worker had accepted are reset, in both trees) and the slowest.
Before, the restarted worker listened while it was still importing mitmproxy,
and connections the kernel gave it waited for that; now it listens only once
it has a table.

    .venv/bin/python bench/router_restart.py
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ROOT, WORK, print_table

from tests.routing.fakes import TOKEN, HubState, Running, make_backend, make_hub


def main() -> int:
    base = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    before = WORK / "router_restart" / f"main-{base[:12]}"
    if not before.exists():
        before.mkdir(parents=True)
        archive = ["git", "archive", base]
        tar = subprocess.run(archive, cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=tar, check=True)
    rows = [[f"before ({base[:8]})", *restart(before)], ["after", *restart(ROOT)]]
    print_table(["router", "requests in 4 s", "failed", "p99", "slowest"], rows)
    return 0


def restart(tree: Path) -> list[str]:
    state = HubState()
    hub, backend = Running(make_hub(state)), Running(make_backend("alice"))
    state.set_route("/user/alice/", backend.url)
    env = {**os.environ, "HUB_ROUTER_TOKEN": TOKEN, "HUB_DATA_DIR": str(WORK / "router_restart")}
    cmd = [sys.executable, "-m", "routing.router", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [*cmd, "--hub-url", hub.url, "--workers", "2"],
        cwd=tree,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = 0
        for line in proc.stderr:
            if line.startswith("router listening on "):
                port = int(line.rsplit(":", 1)[1])
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        results: list[tuple[float, bool]] = []
        stop = threading.Event()
        clients = [threading.Thread(target=load, args=(port, results, stop)) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(1)  # warm
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        first = len(results)
        os.kill(int(workers[0]), signal.SIGKILL)
        time.sleep(4)
        stop.set()
        for client in clients:
            client.join()
    finally:
        proc.terminate()
        proc.wait(10)
        hub.stop()
        backend.stop()
    after = results[first:]
    times = sorted(t for t, _ in after)
    failed = sum(not ok for _, ok in after)
    p99 = times[int(len(times) * 0.99)]
    return [str(len(after)), str(failed), f"{p99 * 1000:.0f} ms", f"{times[-1] * 1000:.0f} ms"]


def load(port: int, results: list[tuple[float, bool]], stop: threading.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/user/alice/x")
            response = conn.getresponse()
            ok = response.status == 200 and b"alice" in response.read()
            conn.close()
        except OSError:
            ok = False
        results.append((time.monotonic() - start, ok))


if __name__ == "__main__":
    sys.exit(main())
