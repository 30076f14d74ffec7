"""The spawner contract: what every backend (local process, Kubernetes) does.

Spawners are called from Celery workers only, never from a web request. They
are synchronous and keep no memory between calls: everything needed to find a
server again lives in `SpawnSpec` and the JSON `state` they return, which the
hub stores on the Server row. A worker restart therefore loses nothing.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[int, str], None]


class SpawnError(RuntimeError):
    """The server could not be started; the message is shown to the user."""


@dataclass(frozen=True)
class SpawnSpec:
    """Everything a backend needs to start one server, resolved from the
    profile, the chosen options and the hub's settings."""

    username: str
    server_name: str
    prefix: str  # /user/alice/ or /user/alice/name/
    api_token: str
    client_id: str
    api_url: str
    public_url: str  # the hub's HUB_PUBLIC_URL
    home: Path
    # with subdomains (servers/hosts.py): scheme://alice.hub.example.org[:port],
    # and the hub's scheme://host[:port]; both "" when off
    user_host: str = ""
    hub_host: str = ""
    user_env: str = ""
    image: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    cpu_limit: float | None = None
    cpu_guarantee: float | None = None
    mem_limit: str = ""
    mem_guarantee: str = ""
    extra_resource_limits: dict[str, str] = field(default_factory=dict)
    default_url: str = "/lab"
    activity_interval: int = 300
    overrides: dict[str, Any] = field(default_factory=dict)
    # what the user's storage is named after (servers/services/storage.py):
    # their username unless they were renamed since their first start
    storage_name: str = ""
    # the spawn attempt (servers.Server.attempt) this start belongs to: the
    # backend marks the process or pod with it so list_running can tell the
    # current attempt's server from one left by a worker that died
    attempt: str = ""


@dataclass(frozen=True)
class Running:
    """A server a backend found running with our marks (Spawner.list_running)."""

    username: str
    server_name: str
    attempt: str  # SpawnSpec.attempt of the start that made it ("" if it had none)
    state: dict[str, Any]  # what stop() and poll() take, like Started.state


@dataclass(frozen=True)
class Started:
    url: str  # where the router reaches the server, e.g. http://127.0.0.1:41234
    state: dict[str, Any]


def hub_environment(spec: SpawnSpec, *, bind_url: str) -> dict[str, str]:
    """The environment `jupyterhub-singleuser` reads (JupyterHub's get_env).

    With subdomains, JUPYTERHUB_HOST is the *hub's* host, as in JupyterHub
    (`hub.public_host`): jupyterhub-singleuser prefixes it to the hub's login,
    logout and OAuth authorize URLs, so the browser logs in on the hub's host,
    never on the user's. The OAuth callback and the public URL are absolute on
    the user's host."""
    access = [
        f"access:servers!server={spec.username}/{spec.server_name}",
        f"access:servers!user={spec.username}",
    ]
    activity_url = f"{spec.api_url}/users/{spec.username}/activity"
    env = {
        "JUPYTERHUB_API_TOKEN": spec.api_token,
        "JPY_API_TOKEN": spec.api_token,
        "JUPYTERHUB_API_URL": spec.api_url,
        "JUPYTERHUB_CLIENT_ID": spec.client_id,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{spec.user_host}{spec.prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(access),
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps(access),
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps([]),
        "JUPYTERHUB_SERVICE_PREFIX": spec.prefix,
        "JUPYTERHUB_SERVICE_URL": bind_url.rstrip("/") + spec.prefix,
        "JUPYTERHUB_USER": spec.username,
        "JUPYTERHUB_SERVER_NAME": spec.server_name,
        "JUPYTERHUB_ACTIVITY_URL": activity_url,
        "JUPYTERHUB_ACTIVITY_INTERVAL": str(spec.activity_interval),
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_HOST": spec.hub_host,
        "JUPYTERHUB_PUBLIC_URL": (spec.user_host or spec.public_url) + spec.prefix,
        "JUPYTERHUB_PUBLIC_HUB_URL": spec.public_url + "/hub/",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_DEFAULT_URL": spec.default_url,
    }
    if spec.mem_limit:
        env["MEM_LIMIT"] = str(spec.mem_limit)
    if spec.mem_guarantee:
        env["MEM_GUARANTEE"] = str(spec.mem_guarantee)
    if spec.cpu_limit is not None:
        env["CPU_LIMIT"] = str(spec.cpu_limit)
    if spec.cpu_guarantee is not None:
        env["CPU_GUARANTEE"] = str(spec.cpu_guarantee)
    env.update({k: str(v) for k, v in spec.environment.items()})
    return env


class StopInProgress(ABC):
    """A stop the backend has asked for and that completes on its own."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to TIMEOUT seconds for the server to be gone; True once it
        is, or once it was forced after its grace period (TIMEOUT None: that
        long). Cheap with TIMEOUT 0."""


class Spawner(ABC):
    """One backend. Every method may be called from any worker, any number of
    times: start must clean up after itself when it raises, stop must be a
    no-op for a server that is already gone."""

    @abstractmethod
    def start(self, spec: SpawnSpec, progress: Progress) -> Started:
        """Launch the server and return where it listens, before it is ready.
        Raises SpawnError with a message for the user."""

    @abstractmethod
    def poll(self, state: dict[str, Any]) -> int | None:
        """None while the server described by STATE is running or still
        starting; an exit status (0 if unknown) once it has stopped.
        Must be cheap: reconcile calls it for every server."""

    @abstractmethod
    def stop(self, state: dict[str, Any], *, grace: float) -> None:
        """Stop the server: ask politely, wait up to GRACE seconds, then force."""

    def begin_stop(self, state: dict[str, Any], *, grace: float) -> StopInProgress | None:
        """Start stopping the server and return what is left to wait for, or
        None when it is gone already. A backend whose servers take a while to
        go (a pod terminating) returns the wait, so that a worker thread is
        not held for it (servers/services/stopping.py); by default this is
        stop() itself."""
        self.stop(state, grace=grace)
        return None

    def describe_failure(self, state: dict[str, Any]) -> str:
        """A short reason for an unexpected exit, shown to the user."""
        return "the server exited"

    def lost_its_port(self, state: dict[str, Any]) -> bool:
        """Whether a server that exited while starting did so because another
        process bound the port it was given between the choice and its own
        bind: a race of every spawner that picks free ports, worth a new try
        rather than a failed start."""
        return False

    def cleanup(self, active: Iterable[tuple[str, str]], *, grace: float) -> list[str]:
        """Reconcile: remove servers this backend runs that belong to none of
        ACTIVE ((username, server name) of every starting, running or
        stopping server). Returns what was done, one line each."""
        return []

    def forget_user(self, username: str, storage_name: str) -> list[str]:
        """The user USERNAME was deleted: release what the backend keeps for
        them beyond their servers (the storage named after STORAGE_NAME), as
        the operator's policy says."""
        return []

    def list_running(self) -> list[Running]:
        """Every server of this hub that is running or starting, found from the
        backend's own records, not the database: processes recorded in the run
        dir (local; the Kubernetes backend sweeps its pods in cleanup()). Reconcile stops the
        ones no active database row accounts for, so a worker killed between
        launching a server and recording it leaves no orphan.

        Contract: a server is listed from the moment start() launched it
        (there is no window where it runs unlisted) until stop() or its exit;
        each entry's `state` works with poll() and stop(); the call is cheap
        enough to run every reconcile interval (one listing, not one call per
        server). A backend that cannot list returns [] (no orphan detection)."""
        return []
