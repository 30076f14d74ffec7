"""The REST protocol through the real `kubernetes` client: CRUD, selectors, Status errors."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes.client import ApiException

from tests.k8s import pod_manifest


def _status(error: ApiException) -> dict:
    return json.loads(error.body)


def _configmap(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_discovery_and_version_answer_like_an_apiserver(k8s_cluster):
    from kubernetes.client import CoreApi, VersionApi

    assert VersionApi(k8s_cluster.api_client).get_code().major == "1"
    assert "v1" in CoreApi(k8s_cluster.api_client).get_api_versions().versions
    names = {r.name for r in k8s_cluster.core.get_api_resources().resources}
    assert {"pods", "pods/status", "persistentvolumeclaims", "events", "namespaces"} <= names


def test_pod_create_get_list_delete(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    created = core.create_namespaced_pod(ns, pod_manifest("p1", ["sleep", "60"]))
    assert created.metadata.uid and created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"  # defaulted as the apiserver does
    assert core.read_namespaced_pod("p1", ns).metadata.uid == created.metadata.uid
    listed = core.list_namespaced_pod(ns)
    assert [p.metadata.name for p in listed.items] == ["p1"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    core.delete_namespaced_pod("p1", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("p1", ns)
    assert gone.value.status == 404


def test_missing_object_is_a_404_status_naming_it(k8s_cluster):
    with pytest.raises(ApiException) as error:
        k8s_cluster.core.read_namespaced_pod("nobody", k8s_cluster.namespace)
    body = _status(error.value)
    assert (error.value.status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    assert body["message"] == 'pods "nobody" not found'
    assert body["details"] == {"name": "nobody", "kind": "pods"}


def test_creating_twice_is_409_already_exists(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("twice"))
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(ns, _configmap("twice"))
    body = _status(error.value)
    assert (error.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'configmaps "twice" already exists'


def test_update_with_stale_resource_version_is_409_conflict(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    first = core.create_namespaced_config_map(ns, _configmap("cm"))
    core.patch_namespaced_config_map("cm", ns, {"data": {"k": "new"}})
    first.data = {"k": "stale"}
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("cm", ns, first)
    body = _status(error.value)
    assert (error.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    assert core.read_namespaced_config_map("cm", ns).data == {"k": "new"}


@pytest.mark.parametrize(
    ("name", "field"),
    [("Bad_Name", "metadata.name"), ("-dash", "metadata.name"), ("x" * 254, "metadata.name")],
)
def test_invalid_names_are_422_with_the_field(k8s_cluster, name, field):
    with pytest.raises(ApiException) as error:
        k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, pod_manifest(name, ["true"]))
    body = _status(error.value)
    assert (error.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == field
    assert body["message"].startswith(f'Pod "{name}" is invalid: metadata.name: Invalid value')


def test_pod_without_image_is_422_required_value(k8s_cluster):
    manifest = {"metadata": {"name": "noimage"}, "spec": {"containers": [{"name": "c"}]}}
    with pytest.raises(ApiException) as error:
        k8s_cluster.core.create_namespaced_pod(k8s_cluster.namespace, manifest)
    cause = _status(error.value)["details"]["causes"][0]
    assert cause == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.containers[0].image",
    }


def test_pod_in_missing_namespace_is_404_for_the_namespace(k8s_cluster):
    with pytest.raises(ApiException) as error:
        k8s_cluster.core.create_namespaced_pod("no-such-ns", pod_manifest("p", ["true"]))
    assert _status(error.value)["message"] == 'namespaces "no-such-ns" not found'


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front,back)", ["a", "c"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app=web,tier=front", ["a"]),
    ],
)
def test_label_selectors_filter_lists(k8s_cluster, selector, expected):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("a", app="web", tier="front"))
    core.create_namespaced_config_map(ns, _configmap("b", app="web"))
    core.create_namespaced_config_map(ns, _configmap("c", app="db", tier="back"))
    core.create_namespaced_config_map(ns, _configmap("d"))
    found = core.list_namespaced_config_map(ns, label_selector=selector).items
    assert [cm.metadata.name for cm in found if cm.metadata.name in "abcd"] == expected


def test_bad_label_selector_is_400(k8s_cluster):
    with pytest.raises(ApiException) as error:
        k8s_cluster.core.list_namespaced_pod(k8s_cluster.namespace, label_selector="a in b")
    assert (error.value.status, _status(error.value)["reason"]) == (400, "BadRequest")


def test_field_selectors_filter_pods_and_reject_unknown_fields(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(ns, pod_manifest("f1", ["sleep", "60"]))
    core.create_namespaced_pod(ns, pod_manifest("f2", ["sleep", "60"]))
    named = core.list_namespaced_pod(ns, field_selector="metadata.name=f2").items
    assert [p.metadata.name for p in named] == ["f2"]
    others = core.list_namespaced_pod(ns, field_selector="metadata.name!=f2").items
    assert [p.metadata.name for p in others] == ["f1"]
    with pytest.raises(ApiException) as error:
        core.list_namespaced_pod(ns, field_selector="spec.bogus=1")
    assert _status(error.value)["message"] == "field label not supported: spec.bogus"


def test_list_pages_with_limit_and_continue(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    for name in ("p-a", "p-b", "p-c"):
        core.create_namespaced_config_map(ns, _configmap(name, page="yes"))
    first = core.list_namespaced_config_map(ns, label_selector="page", limit=2)
    rest = core.list_namespaced_config_map(
        ns, label_selector="page", limit=2, _continue=first.metadata._continue
    )
    assert [c.metadata.name for c in first.items + rest.items] == ["p-a", "p-b", "p-c"]
    assert rest.metadata._continue is None


def test_merge_and_strategic_patches_merge_like_the_apiserver(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(
        ns, pod_manifest("patched", ["sleep", "60"], metadata={"labels": {"a": "1"}})
    )
    # the client sends a dict body as a strategic merge patch
    core.patch_namespaced_pod("patched", ns, {"metadata": {"labels": {"b": "2"}}})
    image = {"spec": {"containers": [{"name": "main", "image": "python:3.12-slim"}]}}
    pod = core.patch_namespaced_pod("patched", ns, image)
    assert pod.metadata.labels == {"a": "1", "b": "2"}
    assert [(c.name, c.image, c.command) for c in pod.spec.containers] == [
        ("main", "python:3.12-slim", ["sleep", "60"])
    ]
    json_patch = [{"op": "remove", "path": "/metadata/labels/a"}]
    assert core.patch_namespaced_pod("patched", ns, json_patch).metadata.labels == {"b": "2"}


def test_pod_spec_other_than_image_is_immutable(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(ns, pod_manifest("fixed", ["sleep", "60"]))
    with pytest.raises(ApiException) as error:
        core.patch_namespaced_pod("fixed", ns, {"spec": {"restartPolicy": "Never"}})
    body = _status(error.value)
    assert (error.value.status, body["reason"]) == (422, "Invalid")
    assert "pod updates may not change fields" in body["message"]


def test_status_subresource_changes_only_status(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    nowhere = {"nodeSelector": {"simulator.hub/none": "x"}}  # stays Pending: nothing else writes
    core.create_namespaced_pod(ns, pod_manifest("st", ["sleep", "60"], **nowhere))
    condition = {"type": "example.com/Checked", "status": "True"}
    patch = {"status": {"conditions": [condition]}, "metadata": {"labels": {"x": "y"}}}
    core.patch_namespaced_pod_status("st", ns, patch)
    pod = core.read_namespaced_pod("st", ns)
    assert "example.com/Checked" in [c.type for c in pod.status.conditions]
    assert not pod.metadata.labels


def test_requests_without_the_token_are_401(k8s_cluster):
    simulator = k8s_cluster.require_simulator("the bearer token check is the simulator's own")
    simulator.token, real = "wrong", simulator.token
    try:
        code, body = simulator.call("GET", "/api/v1/namespaces")
    finally:
        simulator.token = real
    assert (code, body["reason"]) == (401, "Unauthorized")


def _pvc(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_delete_collection_deletes_what_the_selector_matches(k8s_cluster):
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_config_map(ns, _configmap("one", batch="x"))
    core.create_namespaced_config_map(ns, _configmap("two", batch="x"))
    core.create_namespaced_config_map(ns, _configmap("other"))
    core.delete_collection_namespaced_config_map(ns, label_selector="batch=x")
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns).items]
    assert "other" in names and "one" not in names and "two" not in names


def test_kubectl_style_table_requests_get_a_table(k8s_cluster):
    simulator = k8s_cluster.require_simulator("checks the simulator's Table rendering")
    core, ns = k8s_cluster.core, k8s_cluster.namespace
    core.create_namespaced_pod(ns, pod_manifest("listed", ["sleep", "60"]))
    request = urllib.request.Request(
        f"{simulator.url}/api/v1/namespaces/{ns}/pods",
        headers={
            "Authorization": f"Bearer {simulator.token}",
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        table = json.loads(response.read())
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Ready", "Status"]
    assert table["rows"][0]["cells"][0] == "listed"
