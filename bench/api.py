"""REST API speed with 1,000 users: this hub vs JupyterHub 6.1.1, same run.

Measures `GET /hub/api/users?limit=200` (a 200-user page, plain and with the
pagination Accept header) and `GET /hub/api/users/<name>`: requests/s with 4
connections (wrk) and the hub's CPU per request (utime+stime from /proc of the
gunicorn master + workers, or of the jupyterhub process, over the run divided
by the requests served). Requests go to each hub's own port (no proxy).
Rounds are interleaved (ours, JupyterHub, JupyterHub, ours, ...) so drift on
a shared machine hits both; the table shows medians and ratios.

Ours runs the Procfile's `hub` line (gunicorn) with a fresh HUB_DATA_DIR and
SQLite. JupyterHub runs from bench/.work/jh-venv (installed on first use, as
bench/spawn.py does) with DummyAuthenticator, SQLite and an admin service
token; its 1,000 users are created through its API, 100 per POST.

    .venv/bin/python bench/api.py                     # 3 rounds x 8 s per endpoint
    .venv/bin/python bench/api.py --rounds 1 --duration 5 --only ours
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from _common import (
    ROOT,
    WORK,
    cpu_seconds,
    free_port,
    median,
    print_table,
    start_group,
    stop_group,
    tree_cpu_seconds,
    wait_until,
)
from jupyterhub_anchor import ADMIN_SCOPES, launch_jupyterhub

HUB_VENV = ROOT / ".venv"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
PAGINATED = "application/jupyterhub-pagination+json"
CONNECTIONS = 4
# the anchor's service role (shared/anchors/README.md); our token gets the same scopes
ENDPOINTS = (
    ("GET /users?limit=200", "/hub/api/users?limit=200", ""),
    ("GET /users?limit=200 (paginated)", "/hub/api/users?limit=200", PAGINATED),
    ("GET /users/{name}", "/hub/api/users/user0500", ""),
)


class BenchError(RuntimeError):
    pass


@dataclass
class Hub:
    label: str
    url: str  # http://127.0.0.1:PORT, the hub itself
    token: str
    cpu: Callable[[], float]
    proc: subprocess.Popen[bytes]
    results: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    def close(self) -> None:
        stop_group(self.proc)


# --- this platform --------------------------------------------------------------

SETUP_SCRIPT = """
from accounts import services
admin = services.create_user("bench-admin", admin=True)
for i in range({users}):
    services.create_user(f"user{{i:04d}}")
_, raw = services.issue_token(admin, scopes={scopes!r}, note="bench/api.py")
print("TOKEN=" + raw)
"""


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise BenchError(f"no {name!r} line in the Procfile")


def start_ours(tmp: Path, users: int) -> Hub:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        HUB_DATA_DIR=str(tmp / "data"),
        HUB_BIND=f"127.0.0.1:{port}",
        HUB_BIND_URL=f"http://127.0.0.1:{port}",
        HUB_LOG_LEVEL="WARNING",
    )
    python = str(HUB_VENV / "bin" / "python")
    run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True, "text": True}
    subprocess.run([python, "manage.py", "migrate", "--verbosity", "0"], **run)
    script = SETUP_SCRIPT.format(users=users, scopes=ADMIN_SCOPES)
    out = subprocess.run([python, "manage.py", "shell", "-c", script], **run).stdout
    token = next(line[6:] for line in out.splitlines() if line.startswith("TOKEN="))
    cmd = ["bash", "-c", "exec " + procfile_line("hub")]
    proc = start_group(cmd, log=tmp / "hub.log", env=env, cwd=ROOT)
    hub = Hub("this platform", f"http://127.0.0.1:{port}", token, lambda: 0.0, proc)
    hub.cpu = lambda: tree_cpu_seconds(proc.pid)
    wait_for(hub, tmp / "hub.log")
    return hub


# --- JupyterHub 6.1.1 -----------------------------------------------------------


def start_jupyterhub(tmp: Path, users: int) -> Hub:
    token = secrets.token_hex(32)
    launched = launch_jupyterhub(tmp, token=token)
    proc, hub_port = launched.proc, launched.hub_port
    # the hub process only: its CHP child is idle (requests go to the hub port)
    hub = Hub("JupyterHub 6.1.1", f"http://127.0.0.1:{hub_port}", token, lambda: 0.0, proc)
    hub.cpu = lambda: cpu_seconds(proc.pid)
    try:
        wait_for(hub, tmp / "jupyterhub.log")
        names = [f"user{i:04d}" for i in range(users)]
        for start in range(0, users, 100):
            resp = requests.post(
                f"{hub.url}/hub/api/users",
                json={"usernames": names[start : start + 100]},
                headers={"Authorization": f"token {token}"},
                timeout=120,
            )
            if resp.status_code != 201:
                raise BenchError(f"JupyterHub: creating users -> {resp.status_code} {resp.text}")
    except BaseException:
        hub.close()
        raise
    return hub


# --- measuring ------------------------------------------------------------------


def wait_for(hub: Hub, log: Path) -> None:
    def up() -> bool:
        if hub.proc.poll() is not None:
            raise BenchError(f"{hub.label} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            headers = {"Authorization": f"token {hub.token}"}
            return requests.get(f"{hub.url}/hub/api/user", headers=headers, timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(up, timeout=120, what=f"{hub.label} at {hub.url}", interval=0.1)


def check(hub: Hub, path: str, accept: str) -> None:
    """One request first: the load must measure 200s with the expected body."""
    headers = {"Authorization": f"token {hub.token}"}
    if accept:
        headers["Accept"] = accept
    resp = requests.get(hub.url + path, headers=headers, timeout=30)
    if resp.status_code != 200:
        raise BenchError(f"{hub.label} {path}: {resp.status_code} {resp.text[:300]}")
    body = resp.json()
    if "limit=200" in path:
        items = body["items"] if accept else body
        if len(items) != 200 or "servers" not in items[0]:
            raise BenchError(f"{hub.label} {path}: unexpected page {str(body)[:300]}")


def run_wrk(hub: Hub, path: str, accept: str, seconds: float) -> tuple[float, float, float]:
    """(req/s, p50 ms, hub CPU ms per request) of one wrk run."""
    cmd = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s", "--latency"]
    cmd += ["-H", f"Authorization: token {hub.token}"]
    if accept:
        cmd += ["-H", f"Accept: {accept}"]
    before = hub.cpu()
    out = subprocess.run([*cmd, hub.url + path], check=True, capture_output=True, text=True)
    used = hub.cpu() - before
    text = out.stdout
    if "Non-2xx" in text or "Socket errors" in text:
        raise BenchError(f"{hub.label} {path}: errors under load:\n{text}")
    count = int(re.search(r"(\d+) requests in", text).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", text).group(1))
    return rate, p50, used * 1000 / max(count, 1)


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))
    unit = value[len(re.match(r"[\d.]+", value).group(0)) :]
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def measure(hubs: list[Hub], rounds: int, seconds: float) -> None:
    for label, path, accept in ENDPOINTS:
        for hub in hubs:
            check(hub, path, accept)
            run_wrk(hub, path, accept, 2)  # warm-up: caches, connections, JIT-free but lazy imports
        for index in range(rounds):
            order = hubs if index % 2 == 0 else hubs[::-1]
            for hub in order:
                result = run_wrk(hub, path, accept, seconds)
                hub.results.setdefault(label, []).append(result)
                rate, p50, cpu = result
                print(
                    f"  {label:34} {hub.label:17} round {index + 1}: "
                    f"{rate:8.1f} req/s  p50 {p50:7.2f} ms  {cpu:6.2f} ms CPU/req",
                    flush=True,
                )


def report(hubs: list[Hub]) -> int:
    headers = ["endpoint"]
    for hub in hubs:
        headers += [f"{hub.label} req/s", "p50 ms", "CPU ms/req"]
    ours = next((h for h in hubs if h.label == "this platform"), None)
    theirs = next((h for h in hubs if h.label != "this platform"), None)
    if ours and theirs:
        headers += ["CPU/req ratio (target <= 0.5)", "req/s ratio"]
    rows = []
    failed = False
    for label, _, _ in ENDPOINTS:
        row: list[object] = [label]
        meds = {}
        for hub in hubs:
            found = hub.results.get(label, [])
            meds[hub.label] = [median(r[i] for r in found) for i in range(3)]
            rate, p50, cpu = meds[hub.label]
            row += [f"{rate:.0f}", f"{p50:.1f}", f"{cpu:.2f}"]
        if ours and theirs:
            cpu_ratio = meds[ours.label][2] / meds[theirs.label][2]
            failed |= cpu_ratio > 0.5
            verdict = "PASS" if cpu_ratio <= 0.5 else "FAIL"
            row.append(f"{cpu_ratio:.2f}x {verdict}")
            row.append(f"{meds[ours.label][0] / meds[theirs.label][0]:.2f}x")
        rows.append(row)
    print()
    print_table(headers, rows)
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--only", default="ours,jupyterhub", help="ours, jupyterhub or both")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    WORK.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-", dir=WORK))
    hubs: list[Hub] = []
    try:
        wanted = args.only.split(",")
        print(f"setting up {args.users} users in each hub (logs in {tmp}) ...", flush=True)
        if "ours" in wanted:
            (tmp / "ours").mkdir()
            hubs.append(start_ours(tmp / "ours", args.users))
        if "jupyterhub" in wanted:
            (tmp / "jh").mkdir()
            hubs.append(start_jupyterhub(tmp / "jh", args.users))
        print(f"wrk, {CONNECTIONS} connections, {args.duration:.0f} s per run:", flush=True)
        measure(hubs, args.rounds, args.duration)
        return report(hubs)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        for hub in hubs:
            hub.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
