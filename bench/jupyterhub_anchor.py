"""The JupyterHub 6.1.1 anchor, shared by bench/spawn.py and bench/api.py:
installed into its own venv (it cannot share one with mitmproxy's tornado),
configured as ../shared/anchors/README.md describes, started in its own
process group."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from _common import WORK, free_port, start_group

JH_VERSION = "6.1.1"
LAB_VERSION = "4.6.6"
CHP_VERSION = "5.3.0"
JH_VENV = WORK / "jh-venv"
CHP_DIR = WORK / "chp"
CHP_BIN = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
ADMIN_SCOPES = ["admin:users", "admin:servers", "access:servers", "list:users", "read:users"]

CONFIG = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {chp_pid!r}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "password"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.Spawner.args = {args!r}
c.JupyterHub.concurrent_spawn_limit = 100
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": {scopes!r}, "services": ["bench"]}}]
"""


def install_jupyterhub() -> None:
    """JupyterHub + JupyterLab in their own venv, CHP from npm (first run only)."""
    marker = JH_VENV / f".bench-jupyterhub-{JH_VERSION}-lab-{LAB_VERSION}"
    if not marker.exists():
        print(f"installing jupyterhub=={JH_VERSION} into {JH_VENV} ...", flush=True)
        if not (JH_VENV / "bin" / "python").exists():
            subprocess.run(["python3.11", "-m", "venv", str(JH_VENV)], check=True)
        pip = str(JH_VENV / "bin" / "pip")
        packages = [f"jupyterhub=={JH_VERSION}", f"jupyterlab=={LAB_VERSION}"]
        subprocess.run([pip, "install", "--quiet", *packages], check=True)
        marker.touch()
    if not CHP_BIN.exists():
        print(f"installing configurable-http-proxy@{CHP_VERSION} into {CHP_DIR} ...", flush=True)
        package = f"configurable-http-proxy@{CHP_VERSION}"
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(CHP_DIR), package], check=True
        )


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    public_port: int
    hub_port: int
    log: Path


def launch_jupyterhub(tmp: Path, *, token: str) -> Launched:
    """Write the config into TMP and start JupyterHub with an admin service TOKEN."""
    install_jupyterhub()
    (tmp / "homes").mkdir(parents=True, exist_ok=True)
    public_port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    config = CONFIG.format(
        public_port=public_port,
        hub_port=hub_port,
        proxy_api_port=proxy_api_port,
        chp=str(CHP_BIN),
        chp_pid=str(tmp / "chp.pid"),
        db=tmp / "jupyterhub.sqlite",
        cookie=str(tmp / "cookie_secret"),
        homes=str(tmp / "homes"),
        args=["--ServerApp.allow_root=True"] if os.geteuid() == 0 else [],
        token=token,
        scopes=ADMIN_SCOPES,
    )
    (tmp / "jupyterhub_config.py").write_text(config)
    env = {
        "PATH": f"{JH_VENV / 'bin'}:{CHP_BIN.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    cmd = [str(JH_VENV / "bin" / "jupyterhub"), "-f", str(tmp / "jupyterhub_config.py")]
    log = tmp / "jupyterhub.log"
    proc = start_group(cmd, log=log, env=env, cwd=tmp)
    return Launched(proc=proc, public_port=public_port, hub_port=hub_port, log=log)
