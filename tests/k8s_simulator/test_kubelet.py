"""The simulated kubelet: real processes at pod IPs, volumes as directories, status and
conditions through Pending -> Running, graceful delete."""

from __future__ import annotations

import urllib.request

from tests.k8s import POD_IPS_UNREACHABLE, is_ready, pod_manifest

HTTP_SERVER = ["python", "-m", "http.server", "--bind", "0.0.0.0", "8080"]


def _pvc(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def _home(claim: str) -> dict:
    return {
        "container": {"volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]},
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}],
    }


def test_pod_runs_a_real_http_server_at_its_own_pod_ip(k8s_cluster):
    network = k8s_cluster.require_simulator(POD_IPS_UNREACHABLE).network
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    manifest = pod_manifest("web", HTTP_SERVER, container={"readinessProbe": probe})
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, manifest)
    pod = k8s_cluster.wait_for_pod("web", is_ready)
    assert pod.status.phase == "Running"
    assert pod.status.pod_ip.startswith(f"127.{network}.")
    assert pod.status.host_ip.startswith(f"127.{network - 1}.")
    assert [ip.ip for ip in pod.status.pod_ips] == [pod.status.pod_ip]
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/", timeout=10) as response:
        assert response.status == 200


def test_running_pod_reports_conditions_and_container_status(k8s_cluster):
    k8s_cluster.core.create_namespaced_pod(
        k8s_cluster.namespace, pod_manifest("st", ["sleep", "300"])
    )
    pod = k8s_cluster.wait_for_pod("st", is_ready)
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert {
        k: conditions[k] for k in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    } == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    (status,) = pod.status.container_statuses
    assert (status.name, status.ready, status.started, status.restart_count) == (
        "main",
        True,
        True,
        0,
    )
    assert status.state.running.started_at is not None
    reasons = k8s_cluster.event_reasons("st")
    assert reasons[0] == "Scheduled" and reasons[-2:] == ["Created", "Started"]


def test_pod_starts_pending_with_container_creating(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(
        ns,
        pod_manifest(
            "slow",
            ["sleep", "300"],
            initContainers=[
                {"name": "wait", "image": "python:3.11-slim", "command": ["sleep", "1"]}
            ],
        ),
    )
    pod = k8s_cluster.wait_for_pod("slow", lambda p: p.status.init_container_statuses)
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    initialized = next(c for c in pod.status.conditions if c.type == "Initialized")
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    pod = k8s_cluster.wait_for_pod("slow", is_ready)
    assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"


def test_container_that_exits_zero_with_never_ends_succeeded(k8s_cluster):
    manifest = pod_manifest("once", ["python", "-c", "print('hello')"], restartPolicy="Never")
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, manifest)
    pod = k8s_cluster.wait_for_pod("once", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    log = k8s_cluster.core.read_namespaced_pod_log("once", k8s_cluster.namespace)
    assert log == "hello\n"


def test_container_that_fails_with_never_ends_failed_with_its_exit_code(k8s_cluster):
    manifest = pod_manifest("fails", ["python", "-c", "raise SystemExit(3)"], restartPolicy="Never")
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, manifest)
    pod = k8s_cluster.wait_for_pod("fails", lambda p: p.status.phase in ("Succeeded", "Failed"))
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.exit_code, terminated.reason) == ("Failed", 3, "Error")


def test_pvc_directory_outlives_the_pod_and_serves_the_next_one(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_persistent_volume_claim(ns, _pvc("home"))
    write = ["python", "-c", "open('/home/jovyan/note.txt', 'w').write('kept')"]
    core.create_namespaced_pod(
        ns, pod_manifest("writer", write, restartPolicy="Never", **_home("home"))
    )
    assert k8s_cluster.wait_for_pod("writer", lambda p: p.status.phase == "Succeeded")
    core.delete_namespaced_pod("writer", ns)
    k8s_cluster.wait_for_pod_gone("writer")
    claim = core.read_namespaced_persistent_volume_claim("home", ns)
    assert claim.status.phase == "Bound" and claim.spec.volume_name
    read = ["python", "-c", "print(open('/home/jovyan/note.txt').read())"]
    core.create_namespaced_pod(
        ns, pod_manifest("reader", read, restartPolicy="Never", **_home("home"))
    )
    assert k8s_cluster.wait_for_pod("reader", lambda p: p.status.phase == "Succeeded")
    assert core.read_namespaced_pod_log("reader", ns) == "kept\n"


def test_env_gets_field_refs_secrets_and_the_pod_ip_for_the_wildcard(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"token": "t0k"}})
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
        {"name": "URL", "value": "http://0.0.0.0:8888/user/x/"},
        {"name": "NAMED", "value": "$(POD_NAME)-suffix"},
    ]
    show = "import os; print(*(os.environ[k] for k in ('POD_NAME', 'TOKEN', 'URL', 'NAMED')))"
    manifest = pod_manifest(
        "env", ["python", "-c", show], restartPolicy="Never", container={"env": env}
    )
    core.create_namespaced_pod(ns, manifest)
    pod = k8s_cluster.wait_for_pod("env", lambda p: p.status.phase == "Succeeded")
    expected_url = (
        f"http://{pod.status.pod_ip}:8888/user/x/"
        if k8s_cluster.simulated
        else "http://0.0.0.0:8888/user/x/"
    )
    assert core.read_namespaced_pod_log("env", ns) == f"env t0k {expected_url} env-suffix\n"


def test_missing_secret_holds_the_container_in_create_container_config_error(k8s_cluster):
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    manifest = pod_manifest("nosecret", ["sleep", "60"], container={"env": env})
    k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, manifest)
    pod = k8s_cluster.wait_for_pod(
        "nosecret",
        lambda p: (
            p.status.container_statuses
            and p.status.container_statuses[0].state.waiting
            and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
        ),
    )
    assert pod.status.container_statuses[0].state.waiting.message == 'secret "absent" not found'


def test_delete_sends_sigterm_then_removes_the_pod_after_the_process_exits(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    trap = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('up', flush=True)\n"
        "time.sleep(600)\n"
    )
    core.create_namespaced_pod(ns, pod_manifest("graceful", ["python", "-c", trap]))
    k8s_cluster.wait_for_pod("graceful", is_ready)
    deleting = core.delete_namespaced_pod("graceful", ns, grace_period_seconds=30)
    assert deleting.metadata.deletion_timestamp is not None
    assert deleting.metadata.deletion_grace_period_seconds == 30
    k8s_cluster.wait_for_pod_gone("graceful")
    reasons = k8s_cluster.event_reasons("graceful")
    assert reasons[-1] == "Killing"


def test_delete_kills_a_process_that_ignores_sigterm_after_the_grace_period(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    stubborn = (
        "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " server = socket.create_server(('0.0.0.0', 8080)); time.sleep(600)"
    )
    # ready only once it listens, which is after it chose to ignore SIGTERM
    probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    manifest = pod_manifest(
        "stubborn", ["python", "-c", stubborn], container={"readinessProbe": probe}
    )
    core.create_namespaced_pod(ns, manifest)
    k8s_cluster.wait_for_pod("stubborn", is_ready)
    core.delete_namespaced_pod("stubborn", ns, grace_period_seconds=2)
    last = k8s_cluster.wait_for_pod(
        "stubborn", lambda p: p.status.container_statuses[0].state.terminated
    )
    assert last.status.container_statuses[0].state.terminated.exit_code == 137
    k8s_cluster.wait_for_pod_gone("stubborn")


def test_exec_readiness_probe_sees_the_container_paths(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    late = "import time; time.sleep(1); open('/work/ready', 'w').close(); time.sleep(600)"
    spec = {
        "container": {
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            "readinessProbe": {
                "exec": {"command": ["test", "-f", "/work/ready"]},
                "periodSeconds": 1,
            },
        },
        "volumes": [{"name": "work", "emptyDir": {}}],
    }
    core.create_namespaced_pod(ns, pod_manifest("probed", ["python", "-c", late], **spec))
    running = k8s_cluster.wait_for_pod("probed", lambda p: p.status.phase == "Running")
    assert not is_ready(running)  # running, but the probe has not passed yet
    assert k8s_cluster.wait_for_pod("probed", is_ready)


def test_config_map_and_secret_volumes_are_files_at_their_mount_paths(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"app.ini": "a=1"}})
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "sec"}, "stringData": {"pw": "hunter2"}}
    )
    mounts = [
        {"name": "cfg", "mountPath": "/etc/app"},
        {"name": "sec", "mountPath": "/etc/secret", "readOnly": True},
    ]
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {
            "name": "sec",
            "secret": {"secretName": "sec", "items": [{"key": "pw", "path": "password"}]},
        },
    ]
    show = "print(open('/etc/app/app.ini').read(), open('/etc/secret/password').read())"
    manifest = pod_manifest(
        "files",
        ["python", "-c", show],
        restartPolicy="Never",
        container={"volumeMounts": mounts},
        volumes=volumes,
    )
    core.create_namespaced_pod(ns, manifest)
    assert k8s_cluster.wait_for_pod("files", lambda p: p.status.phase == "Succeeded")
    assert core.read_namespaced_pod_log("files", ns) == "a=1 hunter2\n"
