"""The pure decisions of local isolation: mode, account names, bubblewrap's argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers.spawners import isolation
from servers.spawners.isolation import (
    Confinement,
    Mount,
    account_name,
    build_bwrap_argv,
    resolve_mode,
)


@pytest.mark.parametrize(
    ("setting", "euid", "mode"),
    [
        ("auto", 0, "users"),
        ("auto", 1000, "sandbox"),
        ("users", 0, "users"),
        ("sandbox", 0, "sandbox"),
        ("none", 1000, "none"),
    ],
)
def test_mode_follows_setting_and_uid(setting, euid, mode):
    assert resolve_mode(setting, euid=euid) == mode


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="auto, users, sandbox, none"):
        resolve_mode("chroot", euid=0)


@pytest.mark.parametrize(
    ("username", "account"),
    [
        ("alice", "hub-alice"),
        ("bob_2", "hub-bob_2"),
        ("Alice.Smith", "hub-alice-smith-2ece8250"),
        ("a" * 40, "hub-" + "a" * 19 + "-e33cdf9c"),
    ],
)
def test_account_name_is_the_name_or_a_readable_part_and_a_hash(username, account):
    assert account_name(username, prefix="hub-") == account
    assert len(account) <= 32


def test_names_differing_only_by_case_or_dots_get_distinct_accounts():
    names = {account_name(n, prefix="hub-") for n in ("alice.smith", "Alice.Smith", "alice-smith")}
    assert len(names) == 3


def test_plan_covers_data_dir_and_mounts_home_back():
    confinement = Confinement(data_dir=Path("/srv/hub"), home=Path("/srv/hub/homes/alice"))
    assert isolation.mount_plan(confinement) == [
        Mount("dev", "/dev"),
        Mount("tmpfs", "/dev/shm", mode=0o1777),
        Mount("proc", "/proc"),
        Mount("tmpfs", "/tmp", mode=0o1777),
        Mount("tmpfs", "/srv/hub"),
        Mount("dir", "/srv/hub/homes", mode=0o711),
        Mount("bind", "/srv/hub/homes/alice", "/srv/hub/homes/alice"),
    ]


def test_sandbox_argv_is_the_plan_on_the_hosts_root():
    confinement = Confinement(data_dir=Path("/srv/hub"), home=Path("/srv/hub/homes/alice"))
    argv = build_bwrap_argv("/usr/bin/bwrap", confinement, ["jupyterhub-singleuser"])
    assert argv == [
        "/usr/bin/bwrap",
        *("--bind", "/", "/", "--unshare-pid", "--unshare-ipc"),
        *("--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc"),
        *("--perms", "1777", "--tmpfs", "/tmp"),
        *("--tmpfs", "/srv/hub", "--perms", "0711", "--dir", "/srv/hub/homes"),
        *("--bind", "/srv/hub/homes/alice", "/srv/hub/homes/alice"),
        *("--chdir", "/srv/hub/homes/alice", "--cap-drop", "ALL"),
        *("--", "jupyterhub-singleuser"),
    ]


def test_users_argv_drops_to_the_account_last():
    confinement = Confinement(data_dir=Path("/d"), home=Path("/h/alice"), uid=999, gid=995)
    argv = build_bwrap_argv("bwrap", confinement, ["srv"])
    assert argv[argv.index("setpriv") :] == [
        *("setpriv", "--reuid=999", "--regid=995", "--clear-groups"),
        *("--inh-caps=-all", "--bounding-set=-all", "--", "srv"),
    ]


def test_a_user_environment_under_tmp_is_mounted_back_over_the_private_tmp(tmp_path):
    # regression: a checkout under /tmp (as CI may use) lost its .venv-user to the
    # sandbox's own /tmp, and setpriv could not find jupyterhub-singleuser
    env = Path("/tmp/checkout/.venv-user")
    confinement = isolation.Confinement(
        data_dir=tmp_path / "data", home=tmp_path / "home", reopen=(env,)
    )
    plan = isolation.mount_plan(confinement)
    private_tmp = plan.index(Mount("tmpfs", "/tmp", mode=0o1777))
    bind = plan.index(Mount("ro-bind", str(env), str(env)))
    assert bind > private_tmp
    assert Mount("dir", "/tmp/checkout", mode=0o711) in plan[private_tmp:bind]
