"""The shared watch (servers/spawners/reflector.py) against the Kubernetes
API simulator: it follows changes, and lists again when its version expired."""

from __future__ import annotations

import pytest

from servers.spawners.reflector import Gone, Reflector, wait_until
from tests.k8s import SIMULATOR_HISTORY, pod_manifest

pytestmark = pytest.mark.e2e


@pytest.fixture
def reflector(k8s_cluster):
    watch = Reflector(k8s_cluster.core.list_namespaced_pod, k8s_cluster.namespace, selector="t=r")
    yield watch
    watch.stop()


def sleeper(name: str) -> dict:
    pod = pod_manifest(name, ["python", "-c", "import time; time.sleep(600)"])
    pod["metadata"]["labels"] = {"t": "r"}
    return pod


def test_it_follows_added_modified_and_deleted_pods(k8s_cluster, reflector):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(ns, sleeper("other"))
    reflector.start()
    assert reflector.synced.wait(30)
    assert list(reflector.objects) == ["other"]
    core.create_namespaced_pod(ns, sleeper("one"))
    assert wait_until(reflector, lambda: reflector.get("one"), timeout=30)
    core.patch_namespaced_pod("one", ns, {"metadata": {"annotations": {"seen": "yes"}}})
    assert wait_until(
        reflector,
        lambda: (reflector.get("one") or {}).get("metadata", {}).get("annotations", {}).get("seen"),
        timeout=30,
    )
    core.delete_namespaced_pod("one", ns, grace_period_seconds=0)
    assert wait_until(reflector, lambda: reflector.get("one") is None, timeout=60)
    unlabelled = sleeper("unlabelled")
    unlabelled["metadata"]["labels"] = {}
    core.create_namespaced_pod(ns, unlabelled)
    core.create_namespaced_pod(ns, sleeper("last"))
    assert wait_until(reflector, lambda: reflector.get("last"), timeout=30)
    assert reflector.get("unlabelled") is None


def test_an_expired_version_is_gone_and_a_new_list_catches_up(k8s_cluster, reflector):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(ns, sleeper("one"))
    reflector._list()
    for i in range(SIMULATOR_HISTORY + 10):  # push the list's version out of the history
        core.patch_namespaced_pod("one", ns, {"metadata": {"annotations": {"n": str(i)}}})
    with pytest.raises(Gone):
        reflector._watch()
    reflector._list()
    annotations = reflector.get("one")["metadata"]["annotations"]
    assert annotations["n"] == str(SIMULATOR_HISTORY + 9)
