"""Objects' lifecycles across resources: PVC protection, namespace deletion, stopping the
simulator, its command line."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import kubernetes
import yaml
from kubernetes.client import CoreV1Api

from k8s_simulator.processes import descendants
from tests.k8s import ROOT, K8sCluster, is_ready, pod_manifest, start_simulator, stop_simulator

SLEEP = ["sleep", "600"]
CLAIM = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


def test_pvc_in_use_is_held_until_its_pod_is_gone(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_persistent_volume_claim(
        ns, {"metadata": {"name": "held"}, "spec": CLAIM}
    )
    volumes = {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "held"}}]}
    core.create_namespaced_pod(ns, pod_manifest("user", SLEEP, **volumes))
    k8s_cluster.wait_for_pod("user", is_ready)
    core.delete_namespaced_persistent_volume_claim("held", ns)
    claim = core.read_namespaced_persistent_volume_claim("held", ns)
    assert claim.metadata.deletion_timestamp is not None
    assert claim.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    core.delete_namespaced_pod("user", ns, grace_period_seconds=0)
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        core.list_namespaced_persistent_volume_claim,
        ns,
        resource_version=claim.metadata.resource_version,
        timeout_seconds=60,
    ):
        if event["type"] == "DELETED":
            watch.stop()
            break
    assert not core.list_namespaced_persistent_volume_claim(ns).items


def test_deleting_a_namespace_deletes_its_pods_then_itself(k8s_cluster):
    core = k8s_cluster.core
    name = k8s_cluster.namespace + "-gone"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_pod(name, pod_manifest("inside", SLEEP))
    # a pod no kubelet runs yet is deleted at once, and the namespace with it (the
    # test read a namespace already gone once in CI): it must be running first
    deadline = time.monotonic() + 60
    while core.read_namespaced_pod("inside", name).status.phase != "Running":
        assert time.monotonic() < deadline, "the pod inside did not run"
        time.sleep(0.05)
    core.delete_namespace(name)
    terminating = core.read_namespace(name)
    assert terminating.status.phase == "Terminating"  # its pod is still going
    watch = kubernetes.watch.Watch()
    # from the version read: a namespace gone before the watch began is still
    # seen going (without it the watch waited its 90 s out, one run in a few)
    for event in watch.stream(
        core.list_namespace,
        field_selector=f"metadata.name={name}",
        resource_version=terminating.metadata.resource_version,
        timeout_seconds=90,
    ):
        if event["type"] == "DELETED":
            watch.stop()
            break
    assert not core.list_namespaced_pod(name).items
    assert name not in [n.metadata.name for n in core.list_namespace().items]


def _pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stopping_the_simulator_stops_every_pod_process(k8s_cluster, tmp_path):
    k8s_cluster.require_simulator("stops a simulator of its own")
    own = start_simulator(tmp_path)
    client = kubernetes.config.new_client_from_config(str(own.kubeconfig))
    try:
        cluster = K8sCluster(own.kubeconfig, "default", client, CoreV1Api(client), own)
        # a child that leaves the process group, as Jupyter kernels do
        escape = (
            "import subprocess, time;"
            " subprocess.Popen(['sleep', '600'], start_new_session=True); time.sleep(600)"
        )
        cluster.core.create_namespaced_pod(
            "default", pod_manifest("lives", ["python", "-c", escape])
        )
        cluster.wait_for_pod("lives", is_ready)
        deadline = time.monotonic() + 30
        while len(pods := descendants(own.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the container's python has yet to start its escaping child
        assert len(pods) == 2 and all(_pid_alive(pid) for pid in pods)
    finally:
        client.close()
        stop_simulator(own)
    assert not [pid for pid in pods if _pid_alive(pid)]


def test_nodes_file_describes_gpu_nodes_that_gpu_pods_land_on(k8s_cluster, tmp_path):
    k8s_cluster.require_simulator("runs a simulator of its own with --nodes")
    nodes = [
        {"name": "cpu-1"},
        {"name": "gpu-1", "capacity": {"nvidia.com/gpu": 2}, "labels": {"pool": "gpu"}},
    ]
    (tmp_path / "nodes.yaml").write_text(yaml.safe_dump(nodes))
    own = start_simulator(tmp_path, "--nodes", str(tmp_path / "nodes.yaml"))
    client = kubernetes.config.new_client_from_config(str(own.kubeconfig))
    try:
        cluster = K8sCluster(own.kubeconfig, "default", client, CoreV1Api(client), own)
        assert [n.metadata.name for n in cluster.core.list_node().items] == ["cpu-1", "gpu-1"]
        gpu = {"container": {"resources": {"limits": {"nvidia.com/gpu": "2"}}}}
        cluster.core.create_namespaced_pod("default", pod_manifest("trainer", SLEEP, **gpu))
        assert cluster.wait_for_pod("trainer", is_ready).spec.node_name == "gpu-1"
        cluster.core.create_namespaced_pod("default", pod_manifest("second", SLEEP, **gpu))
        event = cluster.wait_for_event("second", "FailedScheduling")
        assert event.message.startswith("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    finally:
        client.close()
        stop_simulator(own)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "k8s_simulator", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_cli_refuses_non_loopback_addresses_and_bad_node_files(tmp_path):
    refused = _cli("--listen", "0.0.0.0:6443")
    assert refused.returncode == 2 and "loopback only" in refused.stderr
    (tmp_path / "nodes.yaml").write_text("name: not-a-list\n")
    bad = _cli("--nodes", str(tmp_path / "nodes.yaml"), "--state-dir", str(tmp_path / "s"))
    assert bad.returncode == 2 and "expected a list of node specs" in bad.stderr
    image = _cli("--image-env", "no-equals-sign", "--state-dir", str(tmp_path / "s"))
    assert image.returncode == 2 and "expected IMAGE=DIR" in image.stderr


def test_a_restarted_simulator_keeps_claims_and_their_directories_but_not_pods(
    k8s_cluster, tmp_path
):
    k8s_cluster.require_simulator("restarts a simulator of its own")
    first = start_simulator(tmp_path)
    client = kubernetes.config.new_client_from_config(str(first.kubeconfig))
    core = CoreV1Api(client)
    try:
        core.create_namespace({"metadata": {"name": "kept"}})
        core.create_namespaced_persistent_volume_claim(
            "kept", {"metadata": {"name": "home"}, "spec": CLAIM}
        )
        core.create_namespaced_pod("kept", pod_manifest("gone", SLEEP))
        bound = K8sCluster(first.kubeconfig, "kept", client, core, first).wait_for_pod(
            "gone", is_ready
        )
        claim = core.read_namespaced_persistent_volume_claim("home", "kept")
        before = int(core.list_namespace().metadata.resource_version)
    finally:
        client.close()
        stop_simulator(first)
    assert bound
    (tmp_path / "kubeconfig").unlink()
    second = start_simulator(tmp_path)
    client = kubernetes.config.new_client_from_config(str(second.kubeconfig))
    core = CoreV1Api(client)
    try:
        again = core.read_namespaced_persistent_volume_claim("home", "kept")
        assert (again.metadata.uid, again.spec.volume_name) == (
            claim.metadata.uid,
            claim.spec.volume_name,
        )
        assert (second.state_dir / "volumes" / again.spec.volume_name).is_dir()
        assert not core.list_namespaced_pod("kept").items
        assert int(core.list_namespace().metadata.resource_version) >= before
    finally:
        client.close()
        stop_simulator(second)


def test_a_damaged_snapshot_is_refused_with_a_clear_error(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "objects.json").write_text("{not json")
    result = _cli("--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2 and "not a simulator snapshot" in result.stderr
    assert (tmp_path / "s" / "objects.json").read_text() == "{not json"  # nothing lost


def test_allow_anonymous_serves_tokenless_requests_but_not_wrong_tokens(k8s_cluster, tmp_path):
    k8s_cluster.require_simulator("runs a simulator of its own with --allow-anonymous")
    own = start_simulator(tmp_path, "--allow-anonymous")
    try:
        with urllib.request.urlopen(f"{own.url}/api/v1/namespaces", timeout=10) as response:
            assert response.status == 200
        own.token = "wrong"
        assert own.call("GET", "/api/v1/namespaces")[0] == 401
    finally:
        stop_simulator(own)
