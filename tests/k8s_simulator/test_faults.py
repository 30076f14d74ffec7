"""Fault injection: each fault shows what a real scheduler/kubelet would show."""

from __future__ import annotations

import json

import kubernetes
import pytest
from kubernetes.client import ApiException, CoreV1Api

from tests.k8s import K8sCluster, is_ready, pod_manifest, start_simulator, stop_simulator

SLEEP = ["sleep", "600"]
FAULT = "simulator.hub/fault"


def _faulty(name: str, fault: str, **spec) -> dict:
    return pod_manifest(name, SLEEP, metadata={"annotations": {FAULT: fault}}, **spec)


def _waiting(reason: str):
    def check(pod) -> bool:
        statuses = pod.status.container_statuses or []
        return bool(
            statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason == reason
        )

    return check


def test_unschedulable_fault_leaves_the_pod_pending_with_the_scheduler_message(k8s_cluster):
    k8s_cluster.require_simulator()
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, _faulty("nofit", "Unschedulable"))
    event = k8s_cluster.wait_for_event("nofit", "FailedScheduling")
    assert event.type == "Warning"
    assert event.message.startswith("0/3 nodes are available: 3 Insufficient cpu.")
    pod = k8s_cluster.core.read_namespaced_pod("nofit", k8s_cluster.namespace)
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (pod.status.phase, scheduled.status, scheduled.reason) == (
        "Pending",
        "False",
        "Unschedulable",
    )
    assert scheduled.message == event.message and pod.spec.node_name is None


@pytest.mark.parametrize("fault", ["ErrImagePull", "ImagePullBackOff"])
def test_image_pull_faults_cycle_through_err_image_pull_and_back_off(k8s_cluster, fault):
    k8s_cluster.require_simulator()
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, _faulty("pull", fault))
    pod = k8s_cluster.wait_for_pod("pull", _waiting("ImagePullBackOff"))
    assert pod.status.phase == "Pending"
    assert (
        'Back-off pulling image "python:3.11-slim"'
        in pod.status.container_statuses[0].state.waiting.message
    )
    selector = "involvedObject.name=pull,reason=Failed"
    events = k8s_cluster.core.list_namespaced_event(k8s_cluster.namespace, field_selector=selector)
    messages = {e.message.split(":")[0] for e in events.items}
    assert messages == {'Failed to pull image "python', "Error"}
    assert {"Pulling", "Failed", "BackOff"} <= set(k8s_cluster.event_reasons("pull"))


def test_an_image_no_environment_maps_to_fails_to_pull(k8s_cluster, tmp_path):
    k8s_cluster.require_simulator("which images exist is the simulator's --image-env")
    strict = start_simulator(tmp_path, "--image-env", "known/*=/tmp", "--default-env", "")
    client = kubernetes.config.new_client_from_config(str(strict.kubeconfig))
    try:
        cluster = K8sCluster(strict.kubeconfig, "default", client, CoreV1Api(client), strict)
        manifest = {
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "image": "unknown:1"}]},
        }
        cluster.core.create_namespaced_pod("default", manifest)
        pod = cluster.wait_for_pod("x", _waiting("ErrImagePull"))
        message = pod.status.container_statuses[0].state.waiting.message
        assert 'failed to pull and unpack image "docker.io/library/unknown:1"' in message
    finally:
        client.close()
        stop_simulator(strict)


def test_oom_killed_container_with_never_ends_failed_oom_killed_137(k8s_cluster):
    k8s_cluster.require_simulator()
    k8s_cluster.core.create_namespaced_pod(
        k8s_cluster.namespace, _faulty("oom", "OOMKilled", restartPolicy="Never")
    )
    pod = k8s_cluster.wait_for_pod("oom", lambda p: p.status.phase == "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    node_events = k8s_cluster.core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.kind=Node,involvedObject.name={pod.spec.node_name},reason=OOMKilling"
    ).items
    assert node_events and node_events[0].message.startswith(
        "Memory cgroup out of memory: Killed process"
    )


def test_evicted_pod_fails_with_reason_evicted_and_stays_until_deleted(k8s_cluster):
    k8s_cluster.require_simulator()
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, _faulty("evict", "Evicted"))
    pod = k8s_cluster.wait_for_pod("evict", lambda p: p.status.phase == "Failed")
    assert pod.status.reason == "Evicted"
    assert pod.status.message.startswith("The node was low on resource: memory.")
    disruption = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    assert k8s_cluster.wait_for_event("evict", "Evicted").type == "Warning"
    assert (
        k8s_cluster.core.read_namespaced_pod("evict", k8s_cluster.namespace).status.phase
        == "Failed"
    )


def test_crash_loop_fault_restarts_with_back_off(k8s_cluster):
    k8s_cluster.require_simulator()
    k8s_cluster.core.create_namespaced_pod(
        k8s_cluster.namespace, _faulty("crash", "CrashLoopBackOff")
    )
    pod = k8s_cluster.wait_for_pod("crash", _waiting("CrashLoopBackOff"))
    (status,) = pod.status.container_statuses
    assert status.restart_count >= 1 and not status.ready
    assert (status.last_state.terminated.reason, status.last_state.terminated.exit_code) == (
        "Error",
        1,
    )
    assert status.state.waiting.message.startswith("back-off ")
    assert pod.status.phase == "Running"
    back_off = k8s_cluster.wait_for_event("crash", "BackOff")
    assert back_off.message.startswith("Back-off restarting failed container main in pod crash_")


def test_kill_endpoint_oom_kills_a_running_container_which_then_restarts(k8s_cluster):
    k8s_cluster.require_simulator()
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, pod_manifest("victim", SLEEP))
    k8s_cluster.wait_for_pod("victim", is_ready)
    k8s_cluster.kill_pod("victim", "OOMKilled")
    pod = k8s_cluster.wait_for_pod(
        "victim", lambda p: p.status.container_statuses[0].restart_count == 1 and is_ready(p)
    )
    last = pod.status.container_statuses[0].last_state.terminated
    assert (last.reason, last.exit_code) == ("OOMKilled", 137)


def test_fault_rules_match_labels_and_run_out_after_times(k8s_cluster):
    k8s_cluster.add_fault("Unschedulable", labels={"role": "gpu"}, times=1)
    gpu = pod_manifest("first", SLEEP, metadata={"labels": {"role": "gpu"}})
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, gpu)
    assert k8s_cluster.wait_for_event("first", "FailedScheduling")
    again = pod_manifest("second", SLEEP, metadata={"labels": {"role": "gpu"}})
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, again)
    assert k8s_cluster.wait_for_pod("second", is_ready)


def test_unknown_fault_names_are_refused(k8s_cluster):
    simulator = k8s_cluster.require_simulator()
    code, body = simulator.call("POST", "/simulator/faults", {"fault": "Flaky"})
    assert code == 422 and "fault must be one of Unschedulable" in body["message"]
    with pytest.raises(ApiException) as error:
        k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, _faulty("typo", "OOMKiled"))
    cause = json.loads(error.value.body)["details"]["causes"][0]
    assert cause["field"] == f"metadata.annotations[{FAULT}]"
