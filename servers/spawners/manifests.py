"""Pure: the pod and the PersistentVolumeClaim of one user server.

`resolve` turns the layered settings into one frozen `PodSettings`, in
KubeSpawner's order: the hub's base settings, then the profile, then the
chosen profile options (servers.services.build_spec has already laid the
last two into `SpawnSpec`); dictionaries merge recursively, everything else
replaces (KubeSpawner's `kubespawner_override` rule). Override keys are
KubeSpawner's trait names, so a Z2JH `profileList` means the same here.

`build_pod` / `build_pvc` return the objects as the API's own JSON (plain
dicts, camelCase): the `kubernetes` client sends dicts as they are, the
escape hatches (`extra_pod_config`, `extra_container_config`) are merged
into them without a round trip through the client's model classes, and
tests compare them as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servers import naming
from servers.options import merge
from servers.spawners.base import SpawnSpec, hub_environment
from servers.spawners.local import parse_bytes

PORT = 8888
HOME = "/home/jovyan"
CONTAINER = "notebook"
HOME_VOLUME = "home"


class ManifestError(ValueError):
    """A profile or setting that cannot become a pod; the message is for the user."""


@dataclass(frozen=True)
class PodSettings:
    """Every value a user server's pod and claim are built from."""

    name: str
    namespace: str
    image: str
    env: dict[str, Any]  # name -> str, or a dict for `valueFrom`
    labels: dict[str, str]
    annotations: dict[str, str]
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: str = ""
    mem_limit: str = ""
    extra_resource_guarantees: dict[str, str] = field(default_factory=dict)
    extra_resource_limits: dict[str, str] = field(default_factory=dict)
    cmd: tuple[str, ...] | None = ("jupyterhub-singleuser",)
    args: tuple[str, ...] = ()
    working_dir: str | None = HOME
    port: int = PORT
    pvc_name: str | None = None  # None: no user storage
    home_mount_path: str = HOME
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    node_affinity_required: tuple[dict[str, Any], ...] = ()
    node_affinity_preferred: tuple[dict[str, Any], ...] = ()
    pod_affinity_required: tuple[dict[str, Any], ...] = ()
    pod_affinity_preferred: tuple[dict[str, Any], ...] = ()
    pod_anti_affinity_required: tuple[dict[str, Any], ...] = ()
    pod_anti_affinity_preferred: tuple[dict[str, Any], ...] = ()
    scheduler_name: str = ""
    priority_class_name: str = ""
    uid: int | None = 1000
    gid: int | None = 100
    fs_gid: int | None = 100
    supplemental_gids: tuple[int, ...] = ()
    privileged: bool = False
    allow_privilege_escalation: bool = False
    container_security_context: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    service_account: str = ""
    automount_service_account_token: bool | None = None
    init_containers: tuple[dict[str, Any], ...] = ()
    extra_containers: tuple[dict[str, Any], ...] = ()
    lifecycle_hooks: dict[str, Any] = field(default_factory=dict)
    extra_pod_config: dict[str, Any] = field(default_factory=dict)
    extra_container_config: dict[str, Any] = field(default_factory=dict)
    storage_capacity: str = "10Gi"
    storage_class: str = ""
    storage_access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    storage_labels: dict[str, str] = field(default_factory=dict)


# KubeSpawner trait name -> PodSettings field; only these may be overridden.
_KEYS = {
    "image": "image",
    "image_pull_policy": "image_pull_policy",
    "image_pull_secrets": "image_pull_secrets",
    "cpu_guarantee": "cpu_guarantee",
    "cpu_limit": "cpu_limit",
    "mem_guarantee": "mem_guarantee",
    "mem_limit": "mem_limit",
    "extra_resource_guarantees": "extra_resource_guarantees",
    "extra_resource_limits": "extra_resource_limits",
    "cmd": "cmd",
    "args": "args",
    "working_dir": "working_dir",
    "port": "port",
    "volumes": "volumes",
    "volume_mounts": "volume_mounts",
    "node_selector": "node_selector",
    "tolerations": "tolerations",
    "node_affinity_required": "node_affinity_required",
    "node_affinity_preferred": "node_affinity_preferred",
    "pod_affinity_required": "pod_affinity_required",
    "pod_affinity_preferred": "pod_affinity_preferred",
    "pod_anti_affinity_required": "pod_anti_affinity_required",
    "pod_anti_affinity_preferred": "pod_anti_affinity_preferred",
    "scheduler_name": "scheduler_name",
    "priority_class_name": "priority_class_name",
    "uid": "uid",
    "gid": "gid",
    "fs_gid": "fs_gid",
    "supplemental_gids": "supplemental_gids",
    "privileged": "privileged",
    "allow_privilege_escalation": "allow_privilege_escalation",
    "container_security_context": "container_security_context",
    "pod_security_context": "pod_security_context",
    "service_account": "service_account",
    "automount_service_account_token": "automount_service_account_token",
    "init_containers": "init_containers",
    "extra_containers": "extra_containers",
    "lifecycle_hooks": "lifecycle_hooks",
    "extra_labels": "labels",
    "extra_annotations": "annotations",
    "extra_pod_config": "extra_pod_config",
    "extra_container_config": "extra_container_config",
    "storage_capacity": "storage_capacity",
    "storage_class": "storage_class",
    "storage_access_modes": "storage_access_modes",
    "storage_extra_labels": "storage_labels",
    "home_mount_path": "home_mount_path",
}
# handled elsewhere (SpawnSpec fields, the storage switch) or meaningless here
_OTHER_KEYS = {"environment", "default_url", "storage_pvc_ensure", "user_env", "start_timeout"}
KNOWN_KEYS = frozenset(_KEYS) | _OTHER_KEYS


def check_keys(overrides: Mapping[str, Any]) -> None:
    unknown = sorted(set(overrides) - KNOWN_KEYS)
    if unknown:
        raise ManifestError(f"unknown Kubernetes setting(s): {', '.join(unknown)}")


def profile_layer(spec: SpawnSpec) -> dict[str, Any]:
    """What the profile and its chosen options set: SpawnSpec's resolved
    fields where they are set, plus every other override."""
    layer: dict[str, Any] = dict(spec.overrides)
    for key in ("image", "mem_limit", "mem_guarantee"):
        if getattr(spec, key):
            layer[key] = getattr(spec, key)
    for key in ("cpu_limit", "cpu_guarantee"):
        if getattr(spec, key) is not None:
            layer[key] = getattr(spec, key)
    if spec.extra_resource_limits:
        layer["extra_resource_limits"] = dict(spec.extra_resource_limits)
    if spec.environment:
        layer["environment"] = dict(spec.environment)
    return layer


def resolve(
    spec: SpawnSpec, base: Mapping[str, Any], *, namespace: str, instance: str
) -> PodSettings:
    """The pod settings of SPEC's server over the hub's BASE settings (same
    keys as a profile's overrides). Raises ManifestError for unknown keys."""
    values = merge(base, profile_layer(spec))
    check_keys(values)
    if not values.get("image"):
        raise ManifestError("no image: set HUB_K8S_IMAGE or the profile's image")
    context = _template_context(spec)
    env = {k: _expand(v, context) for k, v in values.get("environment", {}).items()}
    plain = {k: v for k, v in env.items() if not isinstance(v, Mapping)}
    hub_spec = dataclasses.replace(
        spec,
        environment=plain,
        mem_limit=str(values.get("mem_limit") or ""),
        mem_guarantee=str(values.get("mem_guarantee") or ""),
        cpu_limit=values.get("cpu_limit"),
        cpu_guarantee=values.get("cpu_guarantee"),
    )
    full_env: dict[str, Any] = hub_environment(hub_spec, bind_url=f"http://0.0.0.0:{PORT}")
    full_env["JUPYTER_IMAGE"] = full_env["JUPYTER_IMAGE_SPEC"] = str(values["image"])
    full_env.update({k: dict(v) for k, v in env.items() if isinstance(v, Mapping)})
    fields: dict[str, Any] = {}
    for key, value in values.items():
        if key in _KEYS:
            fields[_KEYS[key]] = _freeze(_expand(value, context))
    fields["labels"] = {
        **fields.get("labels", {}),
        **naming.server_labels(spec.username, spec.server_name, instance=instance),
    }
    fields["annotations"] = {
        **fields.get("annotations", {}),
        naming.ANNOTATION_USER: spec.username,
        naming.ANNOTATION_SERVER: spec.server_name,
    }
    fields["storage_labels"] = {
        **fields.get("storage_labels", {}),
        **naming.storage_labels(spec.username, instance=instance),
    }
    if values.get("storage_pvc_ensure", True):
        fields["pvc_name"] = naming.pvc_name(spec.storage_name or spec.username)
    fields["image_pull_secrets"] = tuple(
        s["name"] if isinstance(s, Mapping) else str(s)
        for s in values.get("image_pull_secrets", ())
    )
    return PodSettings(
        name=naming.pod_name(spec.username, spec.server_name),
        namespace=namespace,
        env=full_env,
        **fields,
    )


def _template_context(spec: SpawnSpec) -> dict[str, str]:
    """KubeSpawner's `{username}`-style fields for volumes, mounts and env."""
    user = naming.user_slug(spec.username)
    server = naming.server_slug(spec.server_name)
    return {
        "username": user,
        "unescaped_username": spec.username,
        "servername": server,
        "unescaped_servername": spec.server_name,
        "user_server": f"{user}--{server}" if server else user,
    }


def _expand(value: Any, context: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        try:
            return value.format_map(context) if "{" in value else value
        except (KeyError, ValueError, IndexError):
            return value  # not a template: braces the user meant literally
    if isinstance(value, Mapping):
        return {k: _expand(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_expand(v, context) for v in value]
    return value


def _freeze(value: Any) -> Any:
    """Lists become tuples so that PodSettings compares and prints stably."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


# --- the objects ----------------------------------------------------------------


def build_pod(s: PodSettings) -> dict[str, Any]:
    """The user server's pod: one `notebook` container on port 8888 plus the
    init containers and sidecars asked for."""
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": s.image,
        "imagePullPolicy": s.image_pull_policy,
        "env": _env_list(s.env),
        "ports": [{"name": "notebook-port", "containerPort": s.port}],
        "resources": _resources(s),
        "securityContext": _container_security(s),
        "volumeMounts": _volume_mounts(s),
    }
    args = [*(s.cmd or ()), *s.args]
    if args:
        # `args`, not `command`: the image's ENTRYPOINT still runs (Z2JH's rule)
        container["args"] = args
    if s.working_dir:
        container["workingDir"] = s.working_dir
    if s.lifecycle_hooks:
        container["lifecycle"] = dict(s.lifecycle_hooks)
    container = merge(container, s.extra_container_config)
    spec: dict[str, Any] = {
        "containers": [container, *s.extra_containers],
        "restartPolicy": "OnFailure",
        "enableServiceLinks": False,
        "automountServiceAccountToken": (
            s.automount_service_account_token
            if s.automount_service_account_token is not None
            else bool(s.service_account)
        ),
        "securityContext": _pod_security(s),
        "volumes": _volumes(s),
    }
    optional = {
        "initContainers": list(s.init_containers),
        "imagePullSecrets": [{"name": name} for name in s.image_pull_secrets],
        "nodeSelector": dict(s.node_selector),
        "tolerations": list(s.tolerations),
        "affinity": _affinity(s),
        "schedulerName": s.scheduler_name,
        "priorityClassName": s.priority_class_name,
        "serviceAccountName": s.service_account,
    }
    spec.update({k: v for k, v in optional.items() if v})
    spec = merge(spec, s.extra_pod_config)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "labels": dict(s.labels),
            "annotations": dict(s.annotations),
        },
        "spec": spec,
    }


def build_pvc(s: PodSettings) -> dict[str, Any]:
    """The user's claim; no storage class means the cluster's default one."""
    if s.pvc_name is None:
        raise ManifestError("this server has no user storage")
    spec: dict[str, Any] = {
        "accessModes": list(s.storage_access_modes),
        "resources": {"requests": {"storage": s.storage_capacity}},
    }
    if s.storage_class:
        spec["storageClassName"] = s.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": s.pvc_name,
            "namespace": s.namespace,
            "labels": dict(s.storage_labels),
            "annotations": {naming.ANNOTATION_USER: s.annotations[naming.ANNOTATION_USER]},
        },
        "spec": spec,
    }


def _env_list(env: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": str(v)}
        for k, v in sorted(env.items())
    ]


def quantity_cpu(value: float) -> str:
    return f"{value:g}"


def quantity_memory(value: str) -> str:
    """KubeSpawner's notation (1G = 1024**3 bytes) as a byte count."""
    try:
        return str(parse_bytes(str(value)))
    except ValueError:
        raise ManifestError(f"{value!r} is not a memory size (e.g. 512M, 2G)") from None


def _resources(s: PodSettings) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if s.cpu_guarantee is not None:
        requests["cpu"] = quantity_cpu(s.cpu_guarantee)
    if s.mem_guarantee:
        requests["memory"] = quantity_memory(s.mem_guarantee)
    if s.cpu_limit is not None:
        limits["cpu"] = quantity_cpu(s.cpu_limit)
    if s.mem_limit:
        limits["memory"] = quantity_memory(s.mem_limit)
    requests.update({k: str(v) for k, v in s.extra_resource_guarantees.items()})
    limits.update({k: str(v) for k, v in s.extra_resource_limits.items()})
    out = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _container_security(s: PodSettings) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": s.allow_privilege_escalation,
        "capabilities": {"drop": ["ALL"]},
    }
    if s.privileged:
        ctx["privileged"] = True
    if s.uid is not None:
        ctx["runAsUser"] = s.uid
        ctx["runAsNonRoot"] = s.uid != 0
    if s.gid is not None:
        ctx["runAsGroup"] = s.gid
    return merge(ctx, s.container_security_context)


def _pod_security(s: PodSettings) -> dict[str, Any]:
    ctx: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if s.fs_gid is not None:
        ctx["fsGroup"] = s.fs_gid
    if s.supplemental_gids:
        ctx["supplementalGroups"] = list(s.supplemental_gids)
    return merge(ctx, s.pod_security_context)


def _volumes(s: PodSettings) -> list[dict[str, Any]]:
    home = []
    if s.pvc_name:
        home = [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": s.pvc_name}}]
    return [*home, *s.volumes]


def _volume_mounts(s: PodSettings) -> list[dict[str, Any]]:
    home = [{"name": HOME_VOLUME, "mountPath": s.home_mount_path}] if s.pvc_name else []
    return [*home, *s.volume_mounts]


def _affinity(s: PodSettings) -> dict[str, Any]:
    def part(required: tuple, preferred: tuple, *, nodes: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if required:
            out["requiredDuringSchedulingIgnoredDuringExecution"] = (
                {"nodeSelectorTerms": list(required)} if nodes else list(required)
            )
        if preferred:
            out["preferredDuringSchedulingIgnoredDuringExecution"] = list(preferred)
        return out

    affinity = {
        "nodeAffinity": part(s.node_affinity_required, s.node_affinity_preferred, nodes=True),
        "podAffinity": part(s.pod_affinity_required, s.pod_affinity_preferred),
        "podAntiAffinity": part(s.pod_anti_affinity_required, s.pod_anti_affinity_preferred),
    }
    return {k: v for k, v in affinity.items() if v}
