"""The only factory for spawners: everything else asks here."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from servers.spawners.base import Spawner, SpawnError, SpawnSpec, Started

__all__ = ["SpawnError", "SpawnSpec", "Spawner", "Started", "get_spawner"]


def get_spawner() -> Spawner:
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
