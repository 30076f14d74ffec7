"""The simulated nodes: a count (default 3 alike) or a YAML/JSON file describing each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}


@dataclass(frozen=True)
class Network:
    """Where the simulator's addresses live: pods in 127.<pods>.<node>.2-254,
    nodes (and host-network pods) at 127.<pods - 1>.0.<node>. Two simulators
    on one machine (two test workers) need networks of their own: each hands
    out its own pods' addresses, and the other's pods are not in its books."""

    pods: int = 77

    def __post_init__(self) -> None:
        if not 2 <= self.pods <= 254:
            raise ValueError(f"--network {self.pods}: expected 2-254 (pods in 127.N.0.0/16)")

    def node_ip(self, index: int) -> str:
        return f"127.{self.pods - 1}.0.{index + 1}"

    def pod_ip(self, index: int, host: int) -> str:
        return f"127.{self.pods}.{index + 1}.{host}"

    def pod_cidr(self, index: int) -> str:
        return f"127.{self.pods}.{index + 1}.0/24"


DEFAULT_NETWORK = Network()


def node_ip(index: int, network: Network = DEFAULT_NETWORK) -> str:
    return network.node_ip(index)


def build_node(
    index: int, spec: dict[str, Any], network: Network = DEFAULT_NETWORK
) -> dict[str, Any]:
    name = spec.get("name") or f"sim-node-{index + 1}"
    capacity = {**DEFAULT_CAPACITY, **{k: str(v) for k, v in (spec.get("capacity") or {}).items()}}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **(spec.get("labels") or {}),
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "podCIDR": network.pod_cidr(index),
            "podCIDRs": [network.pod_cidr(index)],
            **({"taints": spec["taints"]} if spec.get("taints") else {}),
        },
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": network.node_ip(index)},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status (simulated)",
                }
            ],
            "nodeInfo": {
                "machineID": f"simulated-{index + 1}",
                "systemUUID": f"00000000-0000-0000-0000-{index + 1:012d}",
                "bootID": f"00000000-0000-0000-0000-{index + 1:012d}",
                "kernelVersion": "simulated",
                "osImage": "k8s_simulator (local processes)",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.37.0-simulator",
                "containerRuntimeVersion": "simulator://local-processes",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def load_node_specs(value: str) -> list[dict[str, Any]]:
    """--nodes: "3" (three default nodes) or a YAML/JSON file with a list of node specs."""
    if value.isdigit():
        return [{} for _ in range(int(value))]
    text = Path(value).read_text()
    specs = json.loads(text) if value.endswith(".json") else yaml.safe_load(text)
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ValueError(f"{value}: expected a list of node specs (name, capacity, labels, taints)")
    return specs
