"""Servers as pods, side by side in one run: this platform (HUB_SPAWNER=kubernetes)
and JupyterHub 6.1.1 + KubeSpawner 7 (behind configurable-http-proxy), both
against the same Kubernetes API simulator (k8s_simulator, a simulator, not a
cluster: its kubelet runs every pod as a local process at 127.77.x.y), each in
its own namespace.

    .venv/bin/python bench/k8s_spawn.py [--runs 5] [--crowd 100] [--only ours,kubespawner]

Per system, interleaved rounds:
- hub overhead: the moment the server answers at its pod IP (the bench polls
  `http://<pod IP>:8888/user/<u>/api` directly) until the first 200 through the
  hub's proxy (router or CHP), polled every --poll seconds from then on (not
  before: the hub would answer those polls itself and their CPU would count as
  spawning); also from the moment the bench saw the pod Running (read from the
  API each poll). Polling starts with the POST, not after its answer:
  JupyterHub answers its POST only once the server is up;
- control-plane CPU of one start + stop (hub, proxy or router, Celery worker;
  the simulator and the servers, shared by both, are reported apart), in a
  second cycle per round whose client waits as JupyterHub's spawn page does
  (the progress stream, then one proxied request; the stop checked every
  0.25 s), so that the first cycle's polls, which only the hub whose POST
  answers at once gets, do not count; that first cycle's CPU is shown too;
- --crowd servers started at once: wall time until all answer through the
  proxy, and the hub's CPU and peak RSS over that start.

JupyterHub + KubeSpawner run from .venv-kubespawner (`make deps` builds it;
KUBESPAWNER_VENV names another), CHP from it or from bench/.work/chp.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from _common import (
    ROOT,
    WORK,
    descendants,
    free_port,
    median,
    print_table,
    start_group,
    stop_group,
    tree_cpu_seconds,
    wait_until,
)
from jupyterhub_anchor import CHP_BIN, install_jupyterhub
from spawn import (
    BenchError,
    Hub,
    Span,
    answers_api,
    at_once,
    start_ours,
    tail,
    total,
    wait_for_api,
)

KUBESPAWNER_VENV = Path(os.environ.get("KUBESPAWNER_VENV", ROOT / ".venv-kubespawner"))

KUBESPAWNER_CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.concurrent_spawn_limit = 200
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "bench", "scopes": ["admin:users", "admin:servers", "access:servers",
      "list:users", "read:users"], "services": ["bench"]}}
]
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.image = "quay.io/jupyter/base-notebook:latest"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.start_timeout = 600
c.KubeSpawner.http_timeout = 300
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [
    {{"name": "home", "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}
]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
"""


@dataclass
class Simulator:
    proc: subprocess.Popen[bytes]
    kubeconfig: Path
    core: object  # kubernetes.client.CoreV1Api

    def cpu(self) -> float:
        """The simulator alone (API server, scheduler, kubelet), not its pods."""
        return tree_cpu_seconds(self.proc.pid, skip=lambda pid: True)

    def pod_ip(self, namespace: str, name: str) -> tuple[str, float] | None:
        """(pod IP, when the bench saw it Running) once the pod runs."""
        pod = self.core.read_namespaced_pod(name, namespace, _preload_content=False)
        body = json.loads(pod.data)
        status = body.get("status", {})
        if status.get("phase") == "Running" and status.get("podIP"):
            return status["podIP"], time.monotonic()
        return None


def start_simulator(tmp: Path) -> Simulator:
    import kubernetes

    kubeconfig = tmp / "kubeconfig"
    log = tmp / "simulator.log"
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "k8s_simulator"]
    cmd += ["--kubeconfig", str(kubeconfig), "--state-dir", str(tmp / "state")]
    cmd += ["--nodes", "3"]
    proc = start_group(cmd, log=log, env=dict(os.environ), cwd=ROOT)
    wait_until(
        lambda: kubeconfig.exists() or proc.poll() is not None,
        timeout=60,
        what="the simulator's kubeconfig",
        interval=0.05,
    )
    if proc.poll() is not None:
        raise BenchError(f"the simulator exited: {tail(log)}")
    api = kubernetes.config.new_client_from_config(str(kubeconfig))
    core = kubernetes.client.CoreV1Api(api)
    return Simulator(proc=proc, kubeconfig=kubeconfig, core=core)


@dataclass
class PodHub:
    """A hub whose servers are pods in NAMESPACE of the simulator."""

    hub: Hub
    simulator: Simulator
    namespace: str
    overheads: list[float] = field(default_factory=list)  # direct 200 -> proxied 200
    from_running: list[float] = field(default_factory=list)  # pod Running -> proxied 200
    # ours only: direct 200 -> the hub marks the server running (its `started`)
    noticed: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.hub.label

    def spawn_one(self, user: str, poll: float) -> Span:
        """POST, and poll the pod directly and through the proxy side by side
        while the POST is still open: JupyterHub holds its POST until the
        server is up (up to its slow_spawn_timeout, 10 s), so polls that began
        after it returned would see the pod Running, the server answering and
        the route published all at once, and hide what its hub adds."""
        hub = self.hub
        start, wall = time.monotonic(), time.time()
        answered: list[requests.Response | BaseException] = []

        def post() -> None:
            try:
                answered.append(hub.api("POST", f"/users/{user}/server"))
            except BaseException as exc:
                answered.append(exc)

        posting = threading.Thread(target=post, daemon=True)
        posting.start()
        marks: dict[str, float] = {}
        direct = requests.Session()
        proxied = requests.Session()
        proxy_url = f"{hub.public}/user/{user}/api"
        deadline = time.monotonic() + 600
        ip = ""
        while "proxied" not in marks:
            if time.monotonic() > deadline:
                raise BenchError(f"{hub.label}: {user} did not answer in 600 s{hub.exited()}")
            if answered:
                _check_post(hub.label, user, answered[0])
            if not ip:
                found = self._running(user)
                if found:
                    ip, marks["running"] = found
            if (
                ip
                and "direct" not in marks
                and answers_api(direct, f"http://{ip}:8888/user/{user}/api", {})
            ):
                marks["direct"] = time.monotonic()
                direct_wall = time.time()
            # through the proxy only once the server answers: a poll before
            # that is a request the hub itself answers, and would be counted
            # as spawn CPU (~3 ms each)
            if "direct" in marks and answers_api(proxied, proxy_url, hub.headers):
                marks["proxied"] = time.monotonic()
            time.sleep(poll)
        posting.join(timeout=600)
        if not answered:
            raise BenchError(f"{hub.label}: POST {user} still open after its server answered")
        _check_post(hub.label, user, answered[0])
        if "running" in marks:
            self.from_running.append(marks["proxied"] - marks["running"])
        self.overheads.append(marks["proxied"] - marks["direct"])
        if self.label.startswith("this platform"):  # JupyterHub's `started` is the request's
            started = hub.api("GET", f"/users/{user}").json()["servers"][""]["started"]
            self.noticed.append(_epoch(started) - direct_wall)
        return Span(start, marks["proxied"], user, wall, time.time())

    def _running(self, user: str) -> tuple[str, float] | None:
        import kubernetes

        try:
            return self.simulator.pod_ip(self.namespace, f"jupyter-{user}")
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def cycle(self, users: Sequence[str], poll: float) -> tuple[list[Span], float, float, int]:
        """Start USERS at once, stop them; (spans, stop s, hub CPU s, peak RSS)."""
        before = self.hub.cpu()
        peak = RssSampler(self.hub)
        with peak:
            spans = at_once(len(users), lambda i: self.spawn_one(users[i], poll))
        started_cpu = self.hub.cpu() - before
        stopped = self.hub.stop(users)
        wait_until(
            lambda: not self.simulator.core.list_namespaced_pod(self.namespace).items,
            timeout=300,
            what=f"{self.label}: the pods to go",
            interval=0.2,
        )
        cycle_cpu = self.hub.cpu() - before
        return spans, stopped, (cycle_cpu if len(users) == 1 else started_cpu), peak.peak


def _check_post(label: str, user: str, answer: requests.Response | BaseException) -> None:
    if isinstance(answer, BaseException):
        raise BenchError(f"{label}: POST {user} failed: {answer!r}")
    if answer.status_code not in (201, 202):
        raise BenchError(f"{label}: POST {user} -> {answer.status_code} {answer.text[:300]}")


def watched_cycle(pod_hub: PodHub, user: str) -> float:
    """Control-plane CPU of one start+stop by a client that waits as JupyterHub's
    spawn page does (Hub.spawn_watched: the progress stream, then one proxied
    request) and checks the stop every 0.25 s: the polls of `cycle` are answered
    by the hub whose POST returns first (ours), never by JupyterHub, whose POST
    and DELETE return only when done."""
    before = pod_hub.hub.cpu()
    pod_hub.hub.spawn_watched(user)
    pod_hub.hub.stop([user], interval=0.25)
    wait_until(
        lambda: not pod_hub.simulator.core.list_namespaced_pod(pod_hub.namespace).items,
        timeout=300,
        what=f"{pod_hub.label}: the pod to go",
        interval=0.2,
    )
    return pod_hub.hub.cpu() - before


class RssSampler:
    """Peak resident memory of the hub's processes (not its servers) while in use."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, hub_rss(self.hub))
            self._stop.wait(0.5)


def hub_rss(hub: Hub) -> int:
    total_rss = 0
    for proc in hub.procs:
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_rss += int(line.split()[1]) * 1024
            except OSError:
                continue
    return total_rss


def start_kubespawner(tmp: Path, sim: Simulator, namespace: str, users: Sequence[str]) -> Hub:
    python = KUBESPAWNER_VENV / "bin" / "jupyterhub"
    if not python.exists():
        raise BenchError(f"no {python}: run `make deps` (or set KUBESPAWNER_VENV)")
    chp = KUBESPAWNER_VENV / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if not chp.exists():
        install_jupyterhub()
        chp = CHP_BIN
    tmp.mkdir(parents=True)
    token = secrets.token_hex(32)
    public_port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    config = KUBESPAWNER_CONFIG.format(
        public_port=public_port,
        hub_port=hub_port,
        proxy_api_port=proxy_api_port,
        chp=str(chp),
        tmp=tmp,
        token=token,
        namespace=namespace,
    )
    (tmp / "jupyterhub_config.py").write_text(config)
    env = {
        "PATH": f"{KUBESPAWNER_VENV / 'bin'}:{chp.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "KUBECONFIG": str(sim.kubeconfig),
    }
    log = tmp / "jupyterhub.log"
    cmd = [str(python), "-f", str(tmp / "jupyterhub_config.py")]
    proc = start_group(cmd, log=log, env=env, cwd=tmp)
    hub = Hub(
        label="JupyterHub 6.1.1 + KubeSpawner",
        public=f"http://127.0.0.1:{public_port}",
        token=token,
        note="KubeSpawner from .venv-kubespawner, CHP, SQLite",
        procs=[proc],
        log=log,
    )
    try:
        wait_for_api(hub, proc, log)
        resp = hub.api("POST", "/users", json={"usernames": list(users)})
        if resp.status_code != 201:
            raise BenchError(f"JupyterHub: creating users -> {resp.status_code} {resp.text[:300]}")
    except BaseException:
        hub.close()
        raise
    return hub


def start_ours_on(tmp: Path, sim: Simulator, namespace: str, users: Sequence[str]) -> Hub:
    env = {
        "HUB_SPAWNER": "kubernetes",
        "HUB_K8S_KUBECONFIG": str(sim.kubeconfig),
        "HUB_K8S_NAMESPACE": namespace,
        "HUB_START_TIMEOUT": "600",
        "HUB_CONCURRENT_SPAWN_LIMIT": "200",
        # start_ours waits for the worker's "ready." line, an INFO one (Procfile)
        "HUB_LOG_LEVEL": "INFO",
    }
    hub = start_ours(tmp, users, 0.05, 13, extra_env=env)
    hub.label = "this platform (kubernetes)"
    return hub


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def users_for(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="1-user rounds")
    parser.add_argument("--crowd", type=int, default=100, help="servers started at once")
    parser.add_argument("--poll", type=float, default=0.02, help="1-user poll interval, s")
    parser.add_argument("--crowd-poll", type=float, default=0.5, help="crowd poll interval, s")
    parser.add_argument("--only", default="ours,kubespawner")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    WORK.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    solo, crowd = ["solo"], users_for("crowd", args.crowd)
    systems: dict[str, PodHub] = {}
    sim = start_simulator(tmp / "simulator")
    try:
        for name in names:
            namespace = f"bench-{name}"
            sim.core.create_namespace({"metadata": {"name": namespace}})
            start = start_ours_on if name == "ours" else start_kubespawner
            hub = start(tmp / name, sim, namespace, solo + crowd)
            systems[name] = PodHub(hub=hub, simulator=sim, namespace=namespace)
            print(f"{hub.label}: up", flush=True)
        one: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in systems}
        for r in range(args.runs):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                sim_before = sim.cpu()
                spans, stopped, cpu, _ = systems[name].cycle(solo, args.poll)
                watched = watched_cycle(systems[name], solo[0])
                one[name].append((total(spans), stopped, cpu, watched))
                print(
                    f"  round {r + 1}, {name}: start {total(spans):.2f} s, stop {stopped:.2f} s,"
                    f" hub CPU {cpu:.2f} s (watched {watched:.2f} s),"
                    f" overhead {systems[name].overheads[-1] * 1000:.0f} ms,"
                    f" simulator CPU {sim.cpu() - sim_before:.2f} s",
                    flush=True,
                )
        many: dict[str, tuple[float, float, float, int]] = {}
        for name in names:
            spans, stopped, cpu, rss = systems[name].cycle(crowd, args.crowd_poll)
            many[name] = (total(spans), stopped, cpu, rss)
            print(f"  {args.crowd} at once, {name}: {total(spans):.1f} s", flush=True)
        report(systems, one, many, args)
    finally:
        for system in systems.values():
            system.hub.close()
        stop_group(sim.proc)
        if args.keep:
            print(f"\nlogs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{median(values) * 1000:.0f} ms [{min(values) * 1000:.0f}-{max(values) * 1000:.0f}]"


def report(systems: dict[str, PodHub], one: dict, many: dict, args: argparse.Namespace) -> None:
    names = list(systems)
    labels = [systems[n].label for n in names]
    print(f"\nmachine: {os.cpu_count()} CPUs; the simulator's kubelet runs every pod locally")
    print_table(
        ["measure", *labels],
        [
            [
                f"hub overhead: answers at pod IP -> proxied 200 (median of {args.runs})",
                *[ms(systems[n].overheads[: args.runs]) for n in names],
            ],
            [
                "  of it: answers at pod IP -> the hub marks it running",
                *[ms(systems[n].noticed[: args.runs]) for n in names],
            ],
            [
                "pod Running (seen by a watch) -> first proxied 200",
                *[ms(systems[n].from_running[: args.runs]) for n in names],
            ],
            [
                "1 start: POST -> first proxied 200",
                *[f"{median([v[0] for v in one[n]]):.2f} s" for n in names],
            ],
            [
                "control-plane CPU, 1 start+stop (client on the progress stream)",
                *[f"{median([v[3] for v in one[n]]):.2f} s" for n in names],
            ],
            [
                f"  the same, client polling every {args.poll * 1000:.0f} ms",
                *[f"{median([v[2] for v in one[n]]):.2f} s" for n in names],
            ],
            [f"{args.crowd} at once: all answering", *[f"{many[n][0]:.1f} s" for n in names]],
            [
                f"{args.crowd} at once: hub CPU over the start",
                *[f"{many[n][2]:.1f} s" for n in names],
            ],
            [
                f"{args.crowd} at once: hub peak RSS",
                *[f"{many[n][3] / 2**20:.0f} MiB" for n in names],
            ],
            [f"stop {args.crowd} at once", *[f"{many[n][1]:.1f} s" for n in names]],
        ],
    )
    if "ours" in systems and "kubespawner" in systems:
        ours, theirs = systems["ours"], systems["kubespawner"]
        cpu = median([v[3] for v in one["ours"]]) / median([v[3] for v in one["kubespawner"]])
        wall = many["ours"][0] / many["kubespawner"][0]
        overhead = median(ours.overheads[: args.runs])
        print()
        print_table(
            ["target", "measured", "verdict"],
            [
                [
                    "hub overhead p50 <= 100 ms",
                    f"{overhead * 1000:.0f} ms",
                    _verdict(overhead <= 0.1),
                ],
                ["control-plane CPU <= 0.5x KubeSpawner's", f"{cpu:.2f}x", _verdict(cpu <= 0.5)],
                [
                    f"{args.crowd} at once <= 0.5x KubeSpawner's wall time",
                    f"{wall:.2f}x",
                    _verdict(wall <= 0.5),
                ],
                ["(info) KubeSpawner hub overhead p50", ms(theirs.overheads[: args.runs]), ""],
            ],
        )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
