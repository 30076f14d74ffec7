"""Our scope table against the JupyterHub that user servers run (.venv-user).

JupyterHub lives only in the user environment, so the table is read there by a
subprocess and compared here. Every deliberate difference is in KNOWN_DIFFERENCES
with its reason; anything else is drift and fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from accounts import scopes

# regression: issue 8 finding 8 (read:users granted read:servers; admin:groups,
# admin:services and shares lacked subscopes JupyterHub 6.1.1 gives them)

DUMP = """
import json
from jupyterhub import roles, scopes, _version
print(json.dumps({
    "version": _version.__version__,
    "subscopes": {k: v.get("subscopes", []) for k, v in scopes.scope_definitions.items()},
    "self": sorted(s.partition("!")[0] for s in scopes._expand_self_scope("someone")),
    "roles": {r["name"]: r["scopes"] for r in roles.get_default_roles()},
}))
"""

# scope name -> why our SUBSCOPES differs from JupyterHub's scope_definitions there
KNOWN_DIFFERENCES: dict[str, str] = {
    "(no_scope)": "JupyterHub's marker for a token with no permission; ours is the empty set",
    "self": "expanded by scopes.expand() from SELF_SCOPES, not a table entry",
    "inherit": "the token role's placeholder, resolved when a token is issued",
}


@pytest.fixture(scope="module")
def jupyterhub_table() -> dict:
    python = Path(settings.HUB_DEFAULT_USER_ENV) / "bin" / "python"
    out = subprocess.run([python, "-c", DUMP], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_it_compares_with_jupyterhub_6_1_1(jupyterhub_table):
    assert jupyterhub_table["version"] == "6.1.1"


def test_every_scope_has_jupyterhub_subscopes(jupyterhub_table):
    theirs = {k: sorted(v) for k, v in jupyterhub_table["subscopes"].items()}
    ours = {k: sorted(v) for k, v in scopes.SUBSCOPES.items()}
    drift = {
        name: {"ours": ours.get(name), "jupyterhub": theirs.get(name)}
        for name in set(theirs) | set(ours)
        if ours.get(name) != theirs.get(name) and name not in KNOWN_DIFFERENCES
    }
    assert drift == {}


def test_known_differences_are_still_differences(jupyterhub_table):
    """A listed difference that no longer exists must leave the list."""
    theirs = jupyterhub_table["subscopes"]
    stale = [
        name
        for name in KNOWN_DIFFERENCES
        if sorted(scopes.SUBSCOPES.get(name, ["absent"])) == sorted(theirs.get(name, ["absent"]))
    ]
    assert stale == []


def test_self_means_what_jupyterhub_self_means(jupyterhub_table):
    assert sorted(scopes.SELF_SCOPES) == jupyterhub_table["self"]


def test_default_roles_match_jupyterhub(jupyterhub_table):
    assert {k: list(v) for k, v in scopes.ROLES.items()} == jupyterhub_table["roles"]
