"""The core/v1 resources the simulator serves, and the defaults the apiserver fills in."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )


KINDS = {
    kind.plural: kind
    for kind in (
        Kind("pods", "Pod", short_names=("po",)),
        Kind("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",)),
        Kind("events", "Event", short_names=("ev",)),
        Kind("namespaces", "Namespace", namespaced=False, short_names=("ns",)),
        Kind("nodes", "Node", namespaced=False, short_names=("no",)),
        Kind("services", "Service", short_names=("svc",)),
        Kind("secrets", "Secret"),
        Kind("configmaps", "ConfigMap", short_names=("cm",)),
        Kind("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    )
}
SUBRESOURCES = {"pods": ("status", "log"), "persistentvolumeclaims": ("status",)}

_DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def _pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    tagged = ":" in last and not last.endswith(":latest")
    return "IfNotPresent" if tagged or "@" in last else "Always"


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("imagePullPolicy", _pull_policy(container.get("image", "")))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    limits = resources.get("limits") or {}
    requests = resources.setdefault("requests", {}) if limits else resources.get("requests")
    for name, value in limits.items():
        requests.setdefault(name, value)  # type: ignore[union-attr]
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(res) is not None
        and (r.get("limits") or {}).get(res) == (r.get("requests") or {}).get(res)
        for r in resources
        for res in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for toleration in _DEFAULT_TOLERATIONS:
        if not any(t.get("key") == toleration["key"] for t in tolerations):
            tolerations.append(dict(toleration))
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        _default_container(container)
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def default_pvc(pvc: dict[str, Any]) -> None:
    spec = pvc["spec"]
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("storageClassName", "standard")
    pvc.setdefault("metadata", {}).setdefault("finalizers", ["kubernetes.io/pvc-protection"])
    pvc["status"] = {"phase": "Pending"}


def default_secret(secret: dict[str, Any]) -> None:
    secret.setdefault("type", "Opaque")
    string_data = secret.pop("stringData", None) or {}
    data = secret.setdefault("data", {}) if string_data else secret.get("data")
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()  # type: ignore[index]


def default_namespace(namespace: dict[str, Any]) -> None:
    namespace.setdefault("spec", {"finalizers": ["kubernetes"]})
    namespace["status"] = {"phase": "Active"}
    labels = namespace["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = namespace["metadata"]["name"]


def default_service(service: dict[str, Any], cluster_ip: str) -> None:
    spec = service.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    service["status"] = {"loadBalancer": {}}


DEFAULTERS = {
    "pods": default_pod,
    "persistentvolumeclaims": default_pvc,
    "secrets": default_secret,
    "namespaces": default_namespace,
}
