"""The README's configuration tables and the code agree: every HUB_ variable
the hub's settings, its gunicorn config and the router's options read is in
the README, and every variable the README's tables name is read somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
README = (ROOT / "README.md").read_text()

# (file, pattern of a configuration read): settings' env_* readers, the
# router's argparse defaults (env.get), gunicorn's config
READERS = [
    ("hubsite/settings.py", r'env_\w+\(\s*"(HUB_\w+)"'),
    ("hubsite/gunicorn_conf.py", r'env_\w+\(\s*"(HUB_\w+)"'),
    ("routing/router/__main__.py", r'env\.get\(\s*"(HUB_\w+)"'),
    ("routing/router/edges.py", r'env\.get\(\s*"(HUB_\w+)"'),
]


def read_by_code() -> set[str]:
    names: set[str] = set()
    for path, pattern in READERS:
        names |= set(re.findall(pattern, (ROOT / path).read_text()))
    return names


def named_in_readme_tables() -> set[str]:
    rows = [line for line in README.splitlines() if line.startswith("| ")]
    return {name for row in rows for name in re.findall(r"`(HUB_[A-Z_]+)`", row.split("|")[1])}


def test_every_variable_the_code_reads_is_in_the_readme():
    missing = sorted(name for name in read_by_code() if f"`{name}`" not in README)
    assert missing == []


def test_every_variable_in_the_readme_tables_is_read_by_the_code():
    sources = "".join(
        path.read_text()
        for folder in ("hubsite", "routing", "servers", "accounts")
        for path in (ROOT / folder).rglob("*.py")
    )
    unread = sorted(name for name in named_in_readme_tables() if f'"{name}' not in sources)
    assert unread == []


def test_the_procfile_binds_the_hub_where_the_readme_says():
    procfile = (ROOT / "Procfile").read_text()
    assert "HUB_BIND " not in procfile and "${HUB_BIND:" not in procfile
    assert "--config python:hubsite.gunicorn_conf" in procfile


def test_make_system_deps_is_quiet_when_everything_is_installed():
    """What `make test` runs first: with chromium present (as after its first
    run), nothing is installed and nothing printed."""
    import subprocess

    out = subprocess.run(
        ["make", "-s", "system-deps"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
