"""Pod volumes as directories: a PVC is a directory of its own that outlives pods; emptyDir
is per pod; configMap and secret volumes are files written from the objects."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runtime import Mount


class MountError(Exception):
    """FailedMount: the volume's source does not exist (yet)."""


def claim_dir(state_dir: Path, volume_name: str) -> Path:
    return state_dir / "volumes" / volume_name


def _write_items(
    target: Path, data: dict[str, str], items: list[dict[str, Any]] | None, *, secret: bool
) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    chosen = {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in data}
    for key, path in chosen.items():
        if key not in data:
            continue
        file = target / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(base64.b64decode(data[key]) if secret else data[key].encode())


def _source_dir(
    volume: dict[str, Any],
    pod_dir: Path,
    state_dir: Path,
    lookup: Callable[[str, str], dict[str, Any] | None],
) -> Path:
    name = volume["name"]
    if claim := volume.get("persistentVolumeClaim"):
        pvc = lookup("persistentvolumeclaims", claim["claimName"])
        if pvc is None:
            raise MountError(f'persistentvolumeclaim "{claim["claimName"]}" not found')
        if pvc.get("status", {}).get("phase") != "Bound":
            raise MountError(f'persistentvolumeclaim "{claim["claimName"]}" is not bound')
        return claim_dir(state_dir, pvc["spec"]["volumeName"])
    if "hostPath" in volume:
        return Path(volume["hostPath"]["path"])
    target = pod_dir / "volumes" / name
    for kind, plural, secret in (("configMap", "configmaps", False), ("secret", "secrets", True)):
        if kind not in volume:
            continue
        source = volume[kind]
        object_name = source.get("secretName") if secret else source.get("name")
        obj = lookup(plural, object_name or "")
        if obj is None and not source.get("optional"):
            raise MountError(
                f'MountVolume.SetUp failed for volume "{name}" : {kind.lower()} "{object_name}"'
                " not found"
            )
        _write_items(target, (obj or {}).get("data") or {}, source.get("items"), secret=secret)
        return target
    target.mkdir(parents=True, exist_ok=True)  # emptyDir, and any type we do not model
    return target


def container_mounts(
    pod: dict[str, Any],
    container: dict[str, Any],
    pod_dir: Path,
    state_dir: Path,
    lookup: Callable[[str, str], dict[str, Any] | None],
) -> list[Mount]:
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        source = _source_dir(volumes[mount["name"]], pod_dir, state_dir, lookup)
        host = source / mount["subPath"] if mount.get("subPath") else source
        host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(mount["mountPath"], host))
    return mounts
