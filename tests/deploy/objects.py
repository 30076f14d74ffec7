"""Small pure lookups over rendered manifests (lists of dicts), for the tests."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob")


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def pod_template(workload: Obj) -> Obj:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]
    return workload["spec"]["template"]


def pod_templates(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for obj in objs:
        if obj["kind"] in WORKLOADS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", pod_template(obj)


def containers(template: Obj, *, init: bool = True) -> list[Obj]:
    spec = template["spec"]
    return spec.get("initContainers", []) * init + spec["containers"]


def container(workload: Obj, name: str) -> Obj:
    (found,) = [c for c in containers(pod_template(workload)) if c["name"] == name]
    return found


def env(container_: Obj) -> dict[str, Any]:
    """name -> value (or the valueFrom dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_.get("env", [])}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions In/NotIn/Exists) matches LABELS."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def egress_allows_ip(policy: Obj, address: str, port: int) -> bool:
    """Whether a NetworkPolicy's egress rules let its pods reach ADDRESS:PORT
    outside the cluster (ipBlock peers, or rules with no `to` at all)."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"].get("egress", []):
        if not _port_matches(rule.get("ports"), port):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        if any(_in_block(ip, peer["ipBlock"]) for peer in peers if "ipBlock" in peer):
            return True
    return False


def _in_block(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, block: Obj) -> bool:
    excluded = any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
    return ip in ipaddress.ip_network(block["cidr"]) and not excluded


def _port_matches(ports: list[Obj] | None, port: int) -> bool:
    return not ports or any(p.get("port") in (None, port) for p in ports)
