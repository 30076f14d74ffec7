"""What kube-apiserver refuses with 422 Invalid: names, required fields, immutable pod spec."""

from __future__ import annotations

import re
from typing import Any

from .errors import invalid
from .faults import ANNOTATION as FAULT_ANNOTATION
from .faults import FAULTS
from .quantities import is_quantity

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used"
    " for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and"
    " must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex"
    " used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an"
    " alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or"
    " 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

Cause = tuple[str, str, str]  # (field, reason, message)


def _invalid_value(field: str, value: object, why: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return field, "FieldValueInvalid", f"Invalid value: {shown}: {why}"


def _required(field: str, why: str = "") -> Cause:
    return field, "FieldValueRequired", "Required value" + (f": {why}" if why else "")


def _name_causes(name: object, rule: str) -> list[Cause]:
    if not name:
        return [_required("metadata.name", "name or generateName is required")]
    if not isinstance(name, str):
        return [_invalid_value("metadata.name", name, "must be a string")]
    pattern, message, limit = {
        "subdomain": (DNS1123_SUBDOMAIN, SUBDOMAIN_MESSAGE, 253),
        "label": (DNS1123_LABEL, LABEL_MESSAGE, 63),
        "dns1035": (DNS1035_LABEL, DNS1035_MESSAGE, 63),
    }[rule]
    if len(name) > limit:
        return [_invalid_value("metadata.name", name, f"must be no more than {limit} characters")]
    if not pattern.match(name):
        return [_invalid_value("metadata.name", name, message)]
    return []


def _label_causes(labels: object) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [_invalid_value("metadata.labels", str(labels), "must be a map")]
    causes = []
    for key, value in labels.items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                _invalid_value(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric"
                    " characters, '-', '_' or '.', and must start and end with an alphanumeric"
                    " character",
                )
            )
        elif "/" in key and not DNS1123_SUBDOMAIN.match(key.split("/", 1)[0]):
            causes.append(
                _invalid_value("metadata.labels", key, "prefix part " + SUBDOMAIN_MESSAGE)
            )
    return causes


def _resources_causes(path: str, resources: dict[str, Any]) -> list[Cause]:
    causes = []
    for section in ("limits", "requests"):
        for resource, value in (resources.get(section) or {}).items():
            if not is_quantity(value):
                causes.append(
                    _invalid_value(
                        f"{path}.{section}[{resource}]",
                        value,
                        "must be a valid quantity",
                    )
                )
    return causes


def _container_causes(path: str, containers: list[Any], seen: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    for index, container in enumerate(containers):
        where = f"{path}[{index}]"
        name = container.get("name") if isinstance(container, dict) else None
        if not name:
            causes.append(_required(f"{where}.name"))
        elif not DNS1123_LABEL.match(name):
            causes.append(_invalid_value(f"{where}.name", name, LABEL_MESSAGE))
        elif name in seen:
            causes.append((f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        else:
            seen.add(name)
        if isinstance(container, dict):
            if not container.get("image"):
                causes.append(_required(f"{where}.image"))
            causes += _resources_causes(f"{where}.resources", container.get("resources") or {})
    return causes


def _fault_causes(pod: dict[str, Any]) -> list[Cause]:
    """The simulator's own annotation: a typo must not silently mean "no fault"."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(FAULT_ANNOTATION)
    if value is None or value in FAULTS:
        return []
    supported = ", ".join(f'"{f}"' for f in FAULTS)
    return [
        (
            f"metadata.annotations[{FAULT_ANNOTATION}]",
            "FieldValueNotSupported",
            f'Unsupported value: "{value}": supported values: {supported}',
        )
    ]


def _pod_causes(pod: dict[str, Any]) -> list[Cause]:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    containers = spec.get("containers")
    if not containers:
        return [_required("spec.containers")]
    seen: set[str] = set()
    causes = _fault_causes(pod)
    causes += _container_causes("spec.containers", containers, seen)
    causes += _container_causes("spec.initContainers", spec.get("initContainers") or [], seen)
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for index, container in enumerate(containers):
        for mount_index, mount in enumerate(container.get("volumeMounts") or []):
            if mount.get("name") not in volumes:
                field = f"spec.containers[{index}].volumeMounts[{mount_index}].name"
                causes.append(
                    ("" + field, "FieldValueNotFound", f'Not found: "{mount.get("name")}"')
                )
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            (
                "spec.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def _pvc_causes(pvc: dict[str, Any]) -> list[Cause]:
    spec = pvc.get("spec") or {}
    causes = []
    if not spec.get("accessModes"):
        causes.append(_required("spec.accessModes", "at least 1 access mode is required"))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        causes.append(_required("spec.resources[storage]"))
    elif not is_quantity(storage):
        causes.append(_invalid_value("spec.resources[storage]", storage, "must be a quantity"))
    return causes


NAME_RULES = {
    "namespaces": "label",
    "services": "dns1035",
}


def validate(kind: str, plural: str, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid the way kube-apiserver would for OBJ (of KIND) on create."""
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or ""
    causes = _name_causes(name, NAME_RULES.get(plural, "subdomain"))
    causes += _label_causes(metadata.get("labels"))
    if plural == "pods":
        causes += _pod_causes(obj)
    elif plural == "persistentvolumeclaims":
        causes += _pvc_causes(obj)
    if causes:
        raise invalid(kind, name, causes)


def _mutable_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The pod spec minus what an update may change (images, deadline, added tolerations)."""
    spec = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations")}
    for key in ("containers", "initContainers"):
        if key in spec:
            spec[key] = [{k: v for k, v in c.items() if k != "image"} for c in spec[key]]
    return spec


def validate_pod_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    if _mutable_pod_spec(old.get("spec") or {}) != _mutable_pod_spec(new.get("spec") or {}):
        raise invalid(
            "Pod",
            old["metadata"]["name"],
            [
                (
                    "spec",
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields other than"
                    " `spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing"
                    " tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1"
                    " if it was previously negative)",
                )
            ],
        )
