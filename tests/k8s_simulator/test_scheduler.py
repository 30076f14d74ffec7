"""The simulated scheduler, through the API and as pure placement decisions."""

from __future__ import annotations

import pytest

from k8s_simulator.nodes import build_node
from k8s_simulator.placement import place, pod_requests
from tests.k8s import is_ready, pod_manifest

SLEEP = ["sleep", "600"]


def _pod(requests=None, **spec) -> dict:
    container = {"name": "c", "image": "i", "resources": {"requests": requests or {}}}
    return {"metadata": {"name": "p"}, "spec": {"containers": [container], **spec}}


def _nodes(*specs: dict) -> list[dict]:
    return [build_node(i, spec) for i, spec in enumerate(specs)]


def test_gpu_pod_on_gpu_less_nodes_stays_pending_with_the_real_message(k8s_cluster):
    gpu = {"container": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, pod_manifest("gpu", SLEEP, **gpu))
    event = k8s_cluster.wait_for_event("gpu", "FailedScheduling")
    nodes = len(k8s_cluster.core.list_node().items)
    assert event.message.startswith(
        f"0/{nodes} nodes are available: {nodes} Insufficient nvidia.com/gpu."
    )
    pod = k8s_cluster.core.read_namespaced_pod("gpu", k8s_cluster.namespace)
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    # limits without requests default the requests, as the apiserver does
    assert pod.spec.containers[0].resources.requests == {"nvidia.com/gpu": "1"}


def test_node_selector_picks_the_labelled_node(k8s_cluster):
    node = k8s_cluster.core.list_node().items[-1].metadata.name
    selector = {"nodeSelector": {"kubernetes.io/hostname": node}}
    k8s_cluster.core.create_namespaced_pod(
        k8s_cluster.namespace, pod_manifest("pinned", SLEEP, **selector)
    )
    assert k8s_cluster.wait_for_pod("pinned", is_ready).spec.node_name == node
    assert k8s_cluster.wait_for_event("pinned", "Scheduled").message.endswith(f"/pinned to {node}")


def test_pod_for_a_missing_pvc_waits_and_schedules_once_it_exists(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    volumes = {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "later"}}]}
    core.create_namespaced_pod(ns, pod_manifest("waits", SLEEP, **volumes))
    event = k8s_cluster.wait_for_event("waits", "FailedScheduling")
    assert 'persistentvolumeclaim "later" not found' in event.message
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    core.create_namespaced_persistent_volume_claim(
        ns, {"metadata": {"name": "later"}, "spec": claim}
    )
    assert k8s_cluster.wait_for_pod("waits", is_ready)


def test_other_scheduler_names_are_served_too(k8s_cluster):
    k8s_cluster.require_simulator("only the simulator serves every schedulerName")
    manifest = pod_manifest("custom", SLEEP, schedulerName="user-scheduler")
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, manifest)
    assert k8s_cluster.wait_for_event("custom", "Scheduled").reporting_component == "user-scheduler"


@pytest.mark.parametrize(
    ("pod", "nodes", "expected"),
    [
        (_pod({"cpu": "1"}), _nodes({}, {}), None),
        (
            _pod({"cpu": "5"}),
            _nodes({}, {}, {}),
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available:"
            " 3 No preemption victims found for incoming pod.",
        ),
        (
            _pod({"cpu": "5", "memory": "20Gi"}),
            _nodes({}),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1"
            " nodes are available: 1 No preemption victims found for incoming pod.",
        ),
        (
            _pod({"nvidia.com/gpu": "1"}, nodeSelector={"pool": "gpu"}),
            _nodes({}, {"labels": {"pool": "gpu"}}),
            "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's"
            " node affinity/selector. preemption: 0/2 nodes are available: 1 No preemption victims"
            " found for incoming pod, 1 Preemption is not helpful for scheduling.",
        ),
        (
            _pod(),
            _nodes({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. preemption:"
            " 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
        ),
    ],
)
def test_place_explains_like_kube_scheduler(pod, nodes, expected):
    placement = place(pod, nodes, {}, [])
    assert (placement.message or None) == expected
    assert (placement.node is None) == (expected is not None)


def test_place_honours_tolerations_and_counts_what_is_used():
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    nodes = _nodes({"taints": [taint], "capacity": {"nvidia.com/gpu": "1"}})
    tolerating = _pod(
        {"nvidia.com/gpu": "1"}, tolerations=[{"key": "dedicated", "operator": "Exists"}]
    )
    assert place(tolerating, nodes, {}, []).node == "sim-node-1"
    full = {"sim-node-1": pod_requests(tolerating["spec"])}
    assert "1 Insufficient nvidia.com/gpu" in place(tolerating, nodes, full, []).message


def test_place_prefers_the_least_allocated_node():
    nodes = _nodes({}, {})
    used = {"sim-node-1": pod_requests(_pod({"cpu": "2"})["spec"])}
    assert place(_pod({"cpu": "1"}), nodes, used, []).node == "sim-node-2"
