"""The only factory for spawners: everything else asks here."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from servers.spawners.base import (
    Running,
    Spawner,
    SpawnError,
    SpawnSpec,
    Started,
    StopInProgress,
)

__all__ = [
    "Running",
    "SpawnError",
    "SpawnSpec",
    "Spawner",
    "Started",
    "StopInProgress",
    "get_spawner",
]


def get_spawner() -> Spawner:
    if settings.HUB_SPAWNER == "kubernetes":
        return kubernetes_spawner()
    from servers.spawners import isolation
    from servers.spawners.local import LocalProcessSpawner

    return LocalProcessSpawner(
        default_env=settings.HUB_DEFAULT_USER_ENV,
        log_dir=Path(settings.HUB_DATA_DIR) / "logs",
        prefork=settings.HUB_LOCAL_PREFORK,
        run_dir=Path(settings.HUB_DATA_DIR) / "run",
        isolation_mode=isolation.resolve_mode(settings.HUB_LOCAL_ISOLATION, euid=os.geteuid()),
        data_dir=Path(settings.HUB_DATA_DIR),
        account_prefix=settings.HUB_LOCAL_ACCOUNT_PREFIX,
    )


def kubernetes_spawner() -> Spawner:
    from servers.spawners.kubernetes import ClusterConfig, KubernetesSpawner
    from servers.spawners.manifests import merge

    base = {
        "image": settings.HUB_K8S_IMAGE,
        "image_pull_policy": settings.HUB_K8S_IMAGE_PULL_POLICY,
        "image_pull_secrets": list(settings.HUB_K8S_IMAGE_PULL_SECRETS),
        "storage_class": settings.HUB_K8S_STORAGE_CLASS,
        "storage_capacity": settings.HUB_K8S_STORAGE_CAPACITY,
        "storage_access_modes": list(settings.HUB_K8S_STORAGE_ACCESS_MODES),
    }
    cluster = ClusterConfig(
        kubeconfig=settings.HUB_K8S_KUBECONFIG,
        namespace=settings.HUB_K8S_NAMESPACE,
        instance=settings.HUB_K8S_INSTANCE,
    )
    return KubernetesSpawner(
        cluster,
        defaults=merge(base, settings.HUB_K8S_SPAWNER_DEFAULTS),
        start_timeout=settings.HUB_START_TIMEOUT,
        pvc_on_user_delete=settings.HUB_K8S_PVC_ON_USER_DELETE,
    )
