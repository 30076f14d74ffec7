"""HUB_DATABASE_URL holds the database password, so like the other secrets it
can come from a file (HUB_DATABASE_URL_FILE, a mounted Kubernetes Secret)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT_DATABASE = (
    "import django; django.setup(); from django.conf import settings; "
    "db = settings.DATABASES['default']; print(db['ENGINE'], db['NAME'], db['PASSWORD'])"
)


def settings_database(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-c", PRINT_DATABASE],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "hubsite.settings", "HUB_DATA_DIR": str(tmp_path)}
        | env,
        capture_output=True,
        text=True,
    )


def test_database_url_is_read_from_the_file_variant(tmp_path):
    url_file = tmp_path / "url"
    url_file.write_text("postgresql://hub:s%40cret@postgres:5432/hub\n")
    result = settings_database(tmp_path, HUB_DATABASE_URL_FILE=str(url_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "hub", "s@cret"]


def test_an_unreadable_database_url_file_stops_the_hub_with_its_name(tmp_path):
    result = settings_database(tmp_path, HUB_DATABASE_URL_FILE=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "HUB_DATABASE_URL_FILE: cannot read" in result.stderr
