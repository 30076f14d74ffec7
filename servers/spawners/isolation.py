"""How a local server is kept away from the hub and from other users.

Two modes, chosen by HUB_LOCAL_ISOLATION (`auto` picks by the hub's own uid):

- `users` (hub runs as root): each hub user's servers run as that user's own
  system account (`<prefix><name>`, created on first start like JupyterHub's
  LocalProcessSpawner does with adduser), home = their hub home, owned by them,
  mode 0700; the hub's data directory is locked (0711, its secrets, database,
  logs and run files 0600/0700) and, as in sandbox mode, covered in the
  server's mount namespace.
- `sandbox` (hub runs as an ordinary user): every server runs as the hub's uid
  inside bubblewrap, which covers the data directory with an empty tmpfs (only
  the server's own home is mounted back), gives it its own /tmp, IPC and PID
  namespace (so /proc shows no hub process whose root or environment it could
  read), and nothing else of the hub's.
- `none`: the old single-trust-domain mode (JupyterHub's SimpleLocalProcessSpawner).

Servers never get the hub's environment either way: the spawner builds theirs
from a short allow-list plus JupyterHub's contract (their own token only).

The decisions (mode, account name, the mount plan, bubblewrap's argv) are pure functions; the
impure half (useradd, chmod) is small and idempotent, so two workers starting
two servers of one new user at once both succeed.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

MODES = ("auto", "users", "sandbox", "none")
_ACCOUNT_CHARS = re.compile(r"[^a-z0-9_-]")
MAX_ACCOUNT = 32  # useradd's limit on Linux


class IsolationError(RuntimeError):
    """The server cannot be isolated as configured (shown as a failed start)."""


def resolve_mode(setting: str, *, euid: int) -> str:
    """`auto` -> `users` as root, `sandbox` otherwise; the others as given."""
    if setting not in MODES:
        raise ValueError(f"HUB_LOCAL_ISOLATION must be one of {', '.join(MODES)}")
    if setting != "auto":
        return setting
    return "users" if euid == 0 else "sandbox"


def account_name(username: str, *, prefix: str) -> str:
    """The system account of hub user USERNAME: PREFIX + the name when it is
    already a valid lower-case account name, else a readable part plus a hash
    (so `Alice.Smith` and `alice-smith` never share an account)."""
    plain = prefix + username
    if _ACCOUNT_CHARS.search(username) is None and len(plain) <= MAX_ACCOUNT:
        return plain
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    readable = _ACCOUNT_CHARS.sub("-", username.lower())
    room = MAX_ACCOUNT - len(prefix) - len(digest) - 1
    return f"{prefix}{readable[:room]}-{digest}"


@dataclass(frozen=True)
class Confinement:
    """What bubblewrap builds for one server."""

    data_dir: Path  # covered by an empty tmpfs
    home: Path  # mounted back (read-write), the working directory
    reopen: tuple[Path, ...] = ()  # read-only paths to keep reachable under closed parents
    uid: int | None = None  # users mode: run as this account
    gid: int | None = None


class Mount(NamedTuple):
    """One step of a server's filesystem view, done in order: by bubblewrap
    for an exec'd server, by servers/spawners/namespaces.py for a forked one.
    KIND is `dev` (a minimal /dev), `proc` (this PID namespace's), `tmpfs`,
    `dir`, `bind` or `ro-bind` (SOURCE as seen before any step, at PATH)."""

    kind: str
    path: str
    source: str = ""
    mode: int = 0o755


def mount_plan(confinement: Confinement) -> list[Mount]:
    """The host's filesystem minus the data dir (and minus closed directories
    such as /root whose contents are hidden but whose REOPEN paths, e.g. the
    interpreter of a user environment, stay readable), with private /dev,
    /proc, /tmp and /dev/shm (world-writable, sticky, as usual: the server's
    account must be able to write its temporary files); REOPEN paths under
    /tmp, such as a checkout's user environment, are mounted back read-only,
    and the home read-write."""
    plan = [Mount("dev", "/dev"), Mount("tmpfs", "/dev/shm", mode=0o1777)]
    plan += [Mount("proc", "/proc"), Mount("tmpfs", "/tmp", mode=0o1777)]
    tmp = Path("/tmp")
    for path in confinement.reopen:
        if path.is_relative_to(tmp) and path != tmp:
            plan += [*_passable(tmp, path), Mount("ro-bind", str(path), str(path))]
    for closed, inner in closed_parents(confinement.reopen):
        plan += [Mount("tmpfs", str(closed)), *_passable(closed, inner)]
        plan.append(Mount("ro-bind", str(inner), str(inner)))
    home = confinement.home
    plan += [Mount("tmpfs", str(confinement.data_dir)), *_passable(confinement.data_dir, home)]
    plan.append(Mount("bind", str(home), str(home)))
    return plan


def build_bwrap_argv(bwrap: str, confinement: Confinement, command: list[str]) -> list[str]:
    """bubblewrap's command line: the mount plan on the host's root, new PID
    and IPC namespaces, no capabilities: in users mode, setpriv drops to the
    account with no supplementary groups and none."""
    argv = [bwrap, "--bind", "/", "/", "--unshare-pid", "--unshare-ipc"]
    for step in mount_plan(confinement):
        if step.kind in ("dev", "proc"):
            argv += [f"--{step.kind}", step.path]
        elif step.kind in ("tmpfs", "dir"):
            if step.mode != 0o755 or step.kind == "dir":
                argv += ["--perms", f"{step.mode:04o}"]
            argv += [f"--{step.kind}", step.path]
        else:
            argv += [f"--{step.kind}", step.source, step.path]
    argv += ["--chdir", str(confinement.home)]
    if confinement.uid is not None:
        argv += ["--", "setpriv", f"--reuid={confinement.uid}", f"--regid={confinement.gid}"]
        argv += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    else:  # bubblewrap run by root keeps root's capabilities unless told
        argv += ["--cap-drop", "ALL"]
    argv += ["--", *command]
    return argv


def _passable(top: Path, path: Path) -> list[Mount]:
    """Directories between TOP and PATH that others may pass through (bwrap
    would make them 0700, owned by the hub, when it mounts PATH there)."""
    return [
        Mount("dir", str(parent), mode=0o711)
        for parent in reversed(path.parents)
        if parent != top and parent.is_relative_to(top)
    ]


def closed_parents(paths: tuple[Path, ...]) -> list[tuple[Path, Path]]:
    """For each path whose ancestors include one that others cannot enter
    (no o+x, like a pyenv under /root): (that ancestor, the path)."""
    found: list[tuple[Path, Path]] = []
    for path in paths:
        for parent in reversed(path.parents):
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                found.append((parent, path))
                break
    return found


def user_environment_paths(env_dir: Path) -> tuple[Path, ...]:
    """What a server of ENV_DIR must reach: the env and its base interpreter's
    prefix (pyvenv.cfg `home`, one level up from its bin/)."""
    paths = [env_dir.resolve()]
    try:
        for line in (env_dir / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                paths.append(Path(value.strip()).resolve().parent)
    except OSError:
        pass
    return tuple(paths)


def find_bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise IsolationError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    return found


def ensure_account(name: str, *, home: Path) -> pwd.struct_passwd:
    """The account NAME, created (system account, own group, HOME) if missing;
    HOME is then made theirs, 0700 (everything in it too when it was not yet
    theirs: a home kept from HUB_LOCAL_ISOLATION=none belonged to the hub)."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        command = ["useradd", "--system", "--user-group", "--no-create-home"]
        command += ["--home-dir", str(home), "--shell", "/bin/bash", name]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            account = pwd.getpwnam(name)  # another worker may have created it meanwhile
        except KeyError:
            raise IsolationError(f"cannot create account {name}: {result.stderr.strip()}") from None
    home.mkdir(parents=True, exist_ok=True)
    info = os.stat(home)
    if (info.st_uid, info.st_gid) != (account.pw_uid, account.pw_gid):
        _chown_tree(home, account.pw_uid, account.pw_gid)
    os.chmod(home, 0o700)
    return account


def claim_home(home: Path) -> None:
    """Sandbox mode: the home is the hub's own account's (a forked server
    keeps no capability to enter anyone else's), also when users mode left
    it to a server account."""
    home.mkdir(parents=True, exist_ok=True)
    uid, gid = os.geteuid(), os.getegid()
    info = os.stat(home)
    if (info.st_uid, info.st_gid) != (uid, gid):
        _chown_tree(home, uid, gid)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, gid)


def lock_data_dir(data_dir: Path, homes_dir: Path) -> None:
    """Others may pass through the data dir (to reach homes kept there) but
    read nothing in it: every entry but the homes becomes owner-only."""
    os.chmod(data_dir, 0o711)
    for entry in data_dir.iterdir():
        if entry == homes_dir or entry.is_symlink():
            continue
        os.chmod(entry, 0o700 if entry.is_dir() else 0o600)
    if homes_dir.exists():
        os.chmod(homes_dir, 0o711)
