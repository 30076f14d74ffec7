"""Run by tests/servers/test_namespaces.py: confine this process's future
"server" with servers/spawners/namespaces.py, as a zygote's child does, and
print (one JSON line each, in either order: they are two processes) the
monitor's report and what the server sees.

    python confined_probe.py NAMESPACES_PY CONFIG_JSON

CONFIG: {"plan": [...], "uid": int|null, "gid": int|null, "data": dir,
"marker": str, "linger": bool}. With linger, the server starts `sleep` (a
process of its own, as a kernel would be) and waits to be signalled."""

import importlib.util
import json
import os
import pty
import signal
import subprocess
import sys
import time

spec = importlib.util.spec_from_file_location("namespaces", sys.argv[1])
namespaces = importlib.util.module_from_spec(spec)
spec.loader.exec_module(namespaces)
config = json.loads(sys.argv[2])
os.setsid()


def say(message: dict) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


namespaces.confine(
    config["plan"],
    uid=config["uid"],
    gid=config["gid"],
    report=lambda error: say({"report": error, "leader": os.getpid()}),
)

facts = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "pid": os.getpid()}
facts["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
try:
    facts["data dir holds"] = sorted(os.listdir(config["data"]))
except OSError as exc:
    facts["data dir holds"] = type(exc).__name__
with open("/proc/self/status") as status:
    for line in status:
        key, _, value = line.partition(":")
        if key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs"):
            facts[key] = value.strip()
facts["own /proc entry"] = os.stat("/proc/self/status").st_uid == os.getuid()
try:
    with open("/tmp/probe", "w") as fh:
        fh.write("x")
    facts["tmp writable"] = True
except OSError:
    facts["tmp writable"] = False
facts["host tmp hidden"] = not os.path.exists(f"/tmp/{config['marker']}")
_leader, follower = pty.openpty()
facts["terminal"] = os.ttyname(follower)
if config.get("linger"):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as jupyter-server does
    marked = {"PATH": "/usr/bin:/bin", "PROBE_MARKER": config["marker"]}
    subprocess.Popen(["sleep", "300"], env=marked)
say(facts)
if config.get("linger"):
    while True:
        time.sleep(1)
