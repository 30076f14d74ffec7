"""The only factory for spawners: everything else asks here."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from servers.spawners.base import Running, Spawner, SpawnError, SpawnSpec, Started

__all__ = ["Running", "SpawnError", "SpawnSpec", "Spawner", "Started", "get_spawner"]


def get_spawner() -> Spawner:
    from servers.spawners.local import LocalProcessSpawner

    return LocalProcessSpawner(
        default_env=settings.HUB_DEFAULT_USER_ENV,
        log_dir=Path(settings.HUB_DATA_DIR) / "logs",
        prefork=settings.HUB_LOCAL_PREFORK,
        run_dir=Path(settings.HUB_DATA_DIR) / "run",
    )
