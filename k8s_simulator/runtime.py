"""What a container runtime hands the process, translated onto one machine (pure).

There are no network or mount namespaces here, so: the wildcard address 0.0.0.0 in args and
env values becomes the pod IP; a container path under a volume mount becomes that volume's
directory in args and env values; HOME and the working directory map onto the volume that
holds them, else onto the pod's own directory (its "root filesystem")."""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_HOME = "/home/jovyan"  # the Jupyter docker-stacks' HOME and WORKDIR
IMAGE_WORKDIR = "/home/jovyan"
DEFAULT_CMD = ("jupyterhub-singleuser",)  # a Jupyter image's CMD when the pod gives none
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT_CONFIG = Path(tempfile.gettempdir()) / "k8s-simulator-allow-root"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class ConfigError(Exception):
    """CreateContainerConfigError: a referenced Secret/ConfigMap/key does not exist."""


@dataclass(frozen=True)
class Mount:
    path: str  # inside the container
    host: Path


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    rewrite: Callable[[str], str]  # the same translation, for exec probes' commands


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names expand, $$ escapes, others stay as is."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


def map_path(path: str, mounts: list[Mount], rootfs: Path) -> Path:
    for mount in sorted(mounts, key=lambda m: -len(m.path)):
        base = mount.path.rstrip("/")
        if path == base or path.startswith(base + "/"):
            return mount.host / path[len(base) :].lstrip("/")
    return rootfs / path.lstrip("/")


def rewriter(pod_ip: str, mounts: list[Mount]) -> Callable[[str], str]:
    paths = sorted(
        {m.path.rstrip("/") for m in mounts if m.path.rstrip("/")}, key=len, reverse=True
    )
    hosts = {m.path.rstrip("/"): str(m.host) for m in mounts}
    pattern = None
    if paths:
        alternation = "|".join(re.escape(p) for p in paths)
        pattern = re.compile(rf"(?<![A-Za-z0-9_.\-/])({alternation})(?=$|/|[^A-Za-z0-9_.\-])")

    def rewrite(value: str) -> str:
        value = value.replace("0.0.0.0", pod_ip)
        if pattern is not None:
            value = pattern.sub(lambda m: hosts[m.group(1)], value)
        return value

    return rewrite


def _field(pod: dict[str, Any], path: str) -> str:
    meta, status = pod["metadata"], pod.get("status", {})
    if match := re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path):
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    values = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
    }
    if path not in values:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return values[path]


Lookup = Callable[[str, str], dict[str, Any] | None]  # (plural, name) -> object or None


def _key_ref(kind: str, ref: dict[str, Any], lookup: Lookup) -> str | None:
    obj = lookup(kind + "s", ref.get("name", ""))
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{ref.get("name")}" not found')
    data = obj.get("data") or {}
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(
            f"couldn't find key {ref['key']} in {kind.capitalize()}"
            f" {obj['metadata']['namespace']}/{ref.get('name')}"
        )
    value = data[ref["key"]]
    return base64.b64decode(value).decode() if kind == "secret" else value


def _env_value(
    item: dict[str, Any], pod: dict[str, Any], lookup: Lookup, env: dict[str, str]
) -> str | None:
    if "value" in item or "valueFrom" not in item:
        return expand(str(item.get("value", "")), env)
    source = item["valueFrom"]
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"])
    if "secretKeyRef" in source:
        return _key_ref("secret", source["secretKeyRef"], lookup)
    if "configMapKeyRef" in source:
        return _key_ref("configmap", source["configMapKeyRef"], lookup)
    if "resourceFieldRef" in source:
        field = source["resourceFieldRef"]["resource"]
        section, _, name = field.partition(".")
        return str(((pod.get("resources") or {}).get(section) or {}).get(name, "0"))
    raise ConfigError(f"unsupported valueFrom {sorted(source)}")


def _env_from(container: dict[str, Any], lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind in ("configMap", "secret"):
            ref = source.get(f"{kind}Ref")
            if ref is None:
                continue
            obj = lookup(kind.lower() + "s", ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
            for key, value in (obj.get("data") or {}).items():
                text = base64.b64decode(value).decode() if kind == "secret" else value
                env[source.get("prefix", "") + key] = text
    return env


def build_launch(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    venv: Path,
    mounts: list[Mount],
    rootfs: Path,
    lookup: Lookup,
    api_host: str,
    api_port: int,
) -> Launch:
    """argv, env and cwd for CONTAINER; ConfigError when a referenced object is missing."""
    pod_ip = pod["status"]["podIP"]
    rewrite = rewriter(pod_ip, mounts)
    env = {"HOSTNAME": pod["metadata"]["name"], "HOME": IMAGE_HOME, "LANG": "C.UTF-8"}
    env.update(_env_from(container, lookup))
    for item in container.get("env") or []:
        value = _env_value(item, pod, lookup, env)
        if value is not None:
            env[item["name"]] = value
    # only the pod's own values speak of container paths: ours (PATH, ...) are host paths
    home = env["HOME"]
    env = {name: rewrite(value) for name, value in env.items()}
    env["HOME"] = str(map_path(home, mounts, rootfs)) if home.startswith("/") else home
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', SYSTEM_PATH)}"
    env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = api_host, str(api_port)
    if os.geteuid() == 0:
        # Images run Jupyter as a non-root USER (jovyan); here every container runs as the
        # simulator's user. When that is root, tell Jupyter servers root is expected, through
        # the lowest-priority config dir, rather than by changing the pod's own args.
        ROOT_CONFIG.mkdir(parents=True, exist_ok=True)
        (ROOT_CONFIG / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"allow_root": True}})
        )
        existing = env.get("JUPYTER_CONFIG_PATH")
        env["JUPYTER_CONFIG_PATH"] = f"{existing}:{ROOT_CONFIG}" if existing else str(ROOT_CONFIG)
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    argv = command + args if command else (args or list(DEFAULT_CMD))
    argv = [rewrite(expand(arg, env)) for arg in argv]
    cwd = map_path(container.get("workingDir") or IMAGE_WORKDIR, mounts, rootfs)
    return Launch(argv=argv, env=env, cwd=cwd, rewrite=rewrite)
