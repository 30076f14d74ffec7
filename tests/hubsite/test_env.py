"""Configuration is parsed strictly: a bad value stops the hub at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from hubsite import env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("YES", True)])
def test_env_bool_accepts_only_clear_values(monkeypatch, raw, expected):
    monkeypatch.setenv("HUB_X", raw)
    assert env.env_bool("HUB_X", not expected) is expected


def test_env_bool_rejects_anything_else(monkeypatch):
    monkeypatch.setenv("HUB_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="HUB_X must be true or false"):
        env.env_bool("HUB_X", False)


def test_env_int_rejects_words_and_values_below_minimum(monkeypatch):
    monkeypatch.setenv("HUB_N", "ten")
    with pytest.raises(ImproperlyConfigured, match="whole number"):
        env.env_int("HUB_N", 1)
    monkeypatch.setenv("HUB_N", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env.env_int("HUB_N", 1, minimum=0)


def test_env_secret_reads_the_file_variant(monkeypatch, tmp_path):
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    monkeypatch.delenv("HUB_S", raising=False)
    monkeypatch.setenv("HUB_S_FILE", str(secret))
    assert env.env_secret("HUB_S") == "from-file"


def test_persisted_secret_is_created_private_and_then_reused(tmp_path):
    path = tmp_path / "data" / "secret_key"
    first = env.persisted_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert env.persisted_secret(path) == first


@pytest.mark.parametrize(
    ("url", "engine", "name"),
    [
        ("postgresql://u:p%40ss@db:5433/hub", "django.db.backends.postgresql", "hub"),
        ("mysql://root@127.0.0.1/test", "django.db.backends.mysql", "test"),
        ("sqlite:////tmp/x.sqlite3", "hubsite.sqlite", "/tmp/x.sqlite3"),
    ],
)
def test_database_urls_map_to_django_engines(url, engine, name):
    parsed = env.parse_database_url(url)
    assert (parsed["ENGINE"], parsed["NAME"]) == (engine, name)


def test_database_url_password_is_unquoted():
    assert env.parse_database_url("postgresql://u:p%40ss@db/hub")["PASSWORD"] == "p@ss"


def test_unknown_database_scheme_is_a_clear_error():
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'oracle'"):
        env.parse_database_url("oracle://x/y")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HUB_SPAWNER", "docker", "HUB_SPAWNER must be one of local"),
        ("HUB_SUBDOMAIN_HOST", "https://hub.x", "HUB_SUBDOMAIN_HOST must be a DNS name"),
    ],
)
def test_hub_refuses_to_start_with_a_bad_setting(tmp_path, name, value, message):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "HUB_DATA_DIR": str(tmp_path), name: value},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr
