"""Pure scheduling decisions: which node fits a pod, or the scheduler's message for why none.

Follows kube-scheduler's filter order (NodeUnschedulable, TaintToleration, NodeAffinity,
NodeResourcesFit; the first failing filter names a node's reason) and its message format:
"0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: ..."."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .quantities import parse_quantity

Obj = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    node: str | None
    message: str = ""


def pod_requests(spec: Obj) -> dict[str, Decimal]:
    """Effective requests: sum over containers, at least the largest init container's."""
    total: dict[str, Decimal] = {"pods": Decimal(1)}
    for container in spec.get("containers", []):
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(value)
    for container in spec.get("initContainers", []):
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, Decimal(0)), parse_quantity(value))
    return total


def _tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        operator = toleration.get("operator", "Equal")
        if not toleration.get("key") and operator == "Exists":
            return True
        if toleration.get("key") != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_matches(expression: Obj, labels: dict[str, str]) -> bool:
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt") and key in labels:
        try:
            left, right = int(labels[key]), int(values[0])
        except (ValueError, IndexError):
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _affinity_matches(spec: Obj, labels: dict[str, str]) -> bool:
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(
        all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])
        for term in terms
    )


def _node_reasons(pod: Obj, node: Obj, used: dict[str, Decimal]) -> list[str]:
    """Why NODE cannot take POD (empty: it can); the first failing filter decides."""
    spec = pod["spec"]
    if node.get("spec", {}).get("unschedulable"):
        return ["node(s) were unschedulable"]
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            spec.get("tolerations") or [], taint
        ):
            value = f": {taint['value']}" if taint.get("value") else ""
            return [f"node(s) had untolerated taint {{{taint['key']}{value}}}"]
    if not _affinity_matches(spec, node["metadata"].get("labels") or {}):
        return ["node(s) didn't match Pod's node affinity/selector"]
    allocatable = node.get("status", {}).get("allocatable") or {}
    reasons = []
    for name, wanted in sorted(pod_requests(spec).items()):
        if wanted == 0:
            continue
        free = parse_quantity(allocatable.get(name, "0")) - used.get(name, Decimal(0))
        if wanted > free:
            reasons.append("Too many pods" if name == "pods" else f"Insufficient {name}")
    return reasons


def _message(total: int, reasons: Counter[str], preemption: Counter[str]) -> str:
    listed = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    tail = ", ".join(f"{count} {reason}" for reason, count in sorted(preemption.items()))
    return (
        f"0/{total} nodes are available: {listed}. preemption: 0/{total} nodes are available:"
        f" {tail}."
    )


def place(
    pod: Obj, nodes: list[Obj], used: dict[str, dict[str, Decimal]], missing_claims: list[str]
) -> Placement:
    """Pick the least allocated node that passes every filter; else explain like kube-scheduler.

    USED maps node name -> summed requests of the pods bound there. MISSING_CLAIMS are the
    pod's PVCs that do not exist (VolumeBinding's PreFilter fails before any node is tried).
    """
    total = len(nodes)
    if missing_claims:
        return Placement(
            None,
            f'0/{total} nodes are available: persistentvolumeclaim "{missing_claims[0]}" not'
            f" found. preemption: 0/{total} nodes are available: {total} Preemption is not"
            " helpful for scheduling.",
        )
    fits, reasons, preemption = [], Counter[str](), Counter[str]()
    for node in nodes:
        node_used = used.get(node["metadata"]["name"], {})
        found = _node_reasons(pod, node, node_used)
        if not found:
            fits.append((_allocated_share(pod, node, node_used), node["metadata"]["name"]))
            continue
        reasons.update(found)
        resource = any(r.startswith("Insufficient") or r == "Too many pods" for r in found)
        preemption[
            "No preemption victims found for incoming pod."[:-1]
            if resource
            else "Preemption is not helpful for scheduling"
        ] += 1
    if fits:
        return Placement(min(fits)[1])
    if total == 0:
        return Placement(None, "no nodes available to schedule pods")
    return Placement(None, _message(total, reasons, preemption))


def _allocated_share(pod: Obj, node: Obj, used: dict[str, Decimal]) -> Decimal:
    """LeastAllocated scoring (the default profile): the node with most room wins."""
    allocatable = node.get("status", {}).get("allocatable") or {}
    wanted = pod_requests(pod["spec"])
    shares = []
    for name in ("cpu", "memory"):
        capacity = parse_quantity(allocatable.get(name, "0"))
        if capacity:
            shares.append((used.get(name, Decimal(0)) + wanted.get(name, Decimal(0))) / capacity)
    return sum(shares, Decimal(0))
