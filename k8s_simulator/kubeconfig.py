"""The kubeconfig clients use to reach the simulator (plain HTTP, a bearer token)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "k8s-simulator"


def build_kubeconfig(server: str, token: str, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict) -> None:
    """Atomically, so whoever waits for the file never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(partial, 0o600)
    partial.replace(path)
