"""Pure: the names and labels of the Kubernetes objects of a user's server.

Names must be DNS labels (pods double as host names, so at most 63 characters
of [a-z0-9-]) and must stay the same across hub restarts: the spawner finds a
server's pod again by computing its name, never by remembering it.

Collision-free: `john.doe` and `john_doe` both clean up to `john-doe`, so a
name that is not already a plain label is written `<cleaned>---<hash>`, the
hash taken from the raw name. A name kept as it is never contains `--`
(`is_plain`), so it can never equal an escaped one, and two escaped names
differ in their hash. The server part joins the user part with `--`, which
neither part can end with or start with, so (user, server) pairs never meet.
"""

from __future__ import annotations

import hashlib
import re

# --- label and annotation keys (the only place they are spelled) -------------
# Z2JH's keys, so its NetworkPolicies, user scheduler and placeholders select
# our pods unchanged.
LABEL_COMPONENT = "component"
LABEL_APP_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_USER = "hub.jupyter.org/username"
LABEL_SERVER = "hub.jupyter.org/servername"
ANNOTATION_USER = "hub.jupyter.org/username"  # the raw name, labels hold the slug
ANNOTATION_SERVER = "hub.jupyter.org/servername"

COMPONENT_SERVER = "singleuser-server"
COMPONENT_STORAGE = "singleuser-storage"
MANAGED_BY = "hub"

POD_PREFIX = "jupyter-"
PVC_PREFIX = "claim-"
HASH_LENGTH = 8
# "jupyter-" + user + "--" + server fits in a 63-character label
USER_PART_MAX = 26
SERVER_PART_MAX = 27

_PLAIN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_UNSAFE = re.compile(r"[^a-z0-9]+")


def is_plain(name: str) -> bool:
    """True when NAME can be used as it is: a DNS label with no `--`."""
    return bool(_PLAIN.fullmatch(name))


def slug(name: str, *, max_length: int) -> str:
    """NAME as itself if plain and short enough, else `<cleaned>---<hash>`."""
    if is_plain(name) and len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    keep = max_length - HASH_LENGTH - 3
    cleaned = _UNSAFE.sub("-", name.lower()).strip("-")[:keep].rstrip("-")
    return f"{cleaned}---{digest}" if cleaned else f"x---{digest}"


def user_slug(username: str) -> str:
    return slug(username, max_length=USER_PART_MAX)


def server_slug(server_name: str) -> str:
    """'' for the default server."""
    return slug(server_name, max_length=SERVER_PART_MAX) if server_name else ""


def pod_name(username: str, server_name: str) -> str:
    """jupyter-alice, jupyter-alice--gpu (KubeSpawner's `jupyter-{user}--{server}`)."""
    name = POD_PREFIX + user_slug(username)
    return f"{name}--{server_slug(server_name)}" if server_name else name


def pvc_name(username: str) -> str:
    """One claim per user, shared by the user's servers: claim-alice."""
    return PVC_PREFIX + user_slug(username)


def label_value(text: str) -> str:
    """A label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends)."""
    return slug(text, max_length=63) if text else ""


def server_labels(username: str, server_name: str, *, instance: str) -> dict[str, str]:
    """Labels that select one server's pod; INSTANCE keeps two hubs sharing a
    namespace from touching each other's pods."""
    return {
        LABEL_COMPONENT: COMPONENT_SERVER,
        LABEL_APP_COMPONENT: COMPONENT_SERVER,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INSTANCE: instance,
        LABEL_USER: user_slug(username),
        LABEL_SERVER: server_slug(server_name),
    }


def storage_labels(username: str, *, instance: str) -> dict[str, str]:
    return {
        LABEL_COMPONENT: COMPONENT_STORAGE,
        LABEL_APP_COMPONENT: COMPONENT_STORAGE,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INSTANCE: instance,
        LABEL_USER: user_slug(username),
    }


def instance_selector(instance: str, component: str = COMPONENT_SERVER) -> str:
    """The label selector for every object of COMPONENT this hub manages."""
    return (
        f"{LABEL_APP_COMPONENT}={component},{LABEL_MANAGED_BY}={MANAGED_BY},"
        f"{LABEL_INSTANCE}={instance}"
    )
