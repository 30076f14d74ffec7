"""Watches as the apiserver serves them: resourceVersion, selectors, bookmarks, 410 Gone."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import watch
from kubernetes.client import ApiException

from tests.k8s import SIMULATOR_HISTORY

HISTORY_IS_THE_SIMULATORS = (
    "needs the simulator's small watch history (--history); HUB_TEST_KUBECONFIG names a real"
    " cluster"
)
BOOKMARKS_ARE_THE_SIMULATORS = (
    "needs the simulator's short --bookmark-interval (an apiserver bookmarks about once a"
    " minute); HUB_TEST_KUBECONFIG names a real cluster"
)


def _configmap(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"n": "0"}}


def _events(core, namespace: str, **kwargs) -> list[tuple[str, str]]:
    seen = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, namespace, **kwargs):
        seen.append((event["type"], event["object"].metadata.name))
    return seen


def test_resource_versions_only_grow_and_list_reports_one(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    first = core.create_namespaced_config_map(ns, _configmap("a"))
    second = core.patch_namespaced_config_map("a", ns, {"data": {"n": "1"}})
    listed = core.list_namespaced_config_map(ns)
    assert int(first.metadata.resource_version) < int(second.metadata.resource_version)
    assert int(listed.metadata.resource_version) >= int(second.metadata.resource_version)


def test_watch_from_a_resource_version_sends_later_changes_only(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("before"))
    since = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, _configmap("after"))
    core.patch_namespaced_config_map("after", ns, {"data": {"n": "1"}})
    core.delete_namespaced_config_map("after", ns)
    seen = _events(core, ns, resource_version=since, timeout_seconds=1)
    assert seen == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


def test_watch_without_resource_version_starts_with_the_current_objects(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("there"))
    assert ("ADDED", "there") in _events(core, ns, timeout_seconds=1)


def test_objects_leaving_a_label_selector_are_deleted_for_that_watcher(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("moving", team="a"))
    since = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("moving", ns, {"metadata": {"labels": {"team": "b"}}})
    core.patch_namespaced_config_map("moving", ns, {"metadata": {"labels": {"team": "a"}}})
    seen = _events(core, ns, label_selector="team=a", resource_version=since, timeout_seconds=1)
    assert seen == [("DELETED", "moving"), ("ADDED", "moving")]


def test_bookmarks_carry_a_resource_version_to_resume_from(k8s_cluster):
    k8s_cluster.require_simulator(BOOKMARKS_ARE_THE_SIMULATORS)
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    since = core.list_namespaced_config_map(ns).metadata.resource_version
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=since,
        allow_watch_bookmarks=True,
        timeout_seconds=3,
    )
    bookmarks = [e for e in stream if e["type"] == "BOOKMARK"]
    assert bookmarks, "a watch allowing bookmarks gets them (before its timeout at the latest)"
    resume = bookmarks[-1]["object"]["metadata"]["resourceVersion"]
    assert int(resume) >= int(since)
    core.create_namespaced_config_map(ns, _configmap("later"))
    assert _events(core, ns, resource_version=resume, timeout_seconds=1) == [("ADDED", "later")]


def test_watch_from_a_compacted_resource_version_gets_410_expired_then_relists(k8s_cluster):
    k8s_cluster.require_simulator(HISTORY_IS_THE_SIMULATORS)
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("busy"))
    old = core.list_namespaced_config_map(ns).metadata.resource_version
    for n in range(SIMULATOR_HISTORY + 5):  # push OLD out of the kept history
        core.patch_namespaced_config_map("busy", ns, {"data": {"n": str(n)}})
    with pytest.raises(ApiException) as gone:
        _events(core, ns, resource_version=old, timeout_seconds=1)
    assert gone.value.status == 410
    # what every reflector does next: list again, watch from the list's resourceVersion
    fresh = core.list_namespaced_config_map(ns)
    assert [c.data["n"] for c in fresh.items] == [str(SIMULATOR_HISTORY + 4)]
    core.delete_namespaced_config_map("busy", ns)
    seen = _events(core, ns, resource_version=fresh.metadata.resource_version, timeout_seconds=1)
    assert seen == [("DELETED", "busy")]


def test_the_410_is_an_error_event_with_an_expired_status(k8s_cluster):
    simulator = k8s_cluster.require_simulator("reads the raw watch stream of the simulator")
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("raw"))
    old = core.list_namespaced_config_map(ns).metadata.resource_version
    for n in range(SIMULATOR_HISTORY + 5):
        core.patch_namespaced_config_map("raw", ns, {"data": {"n": str(n)}})
    url = f"{simulator.url}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={old}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {simulator.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        (line,) = response.read().splitlines()
    event = json.loads(line)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"].startswith(f"too old resource version: {old} (")
