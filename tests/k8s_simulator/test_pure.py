"""Table tests of the simulator's pure parts: selectors, patches, quantities, runtime mapping."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import pytest

from k8s_simulator.errors import ApiError
from k8s_simulator.images import ImageMap, normalize
from k8s_simulator.kubelet import IpPool
from k8s_simulator.patches import json_patch, merge_patch, strategic_merge_patch
from k8s_simulator.quantities import parse_quantity
from k8s_simulator.runtime import Mount, build_launch, expand, map_path
from k8s_simulator.selectors import matches_labels, parse_label_selector
from k8s_simulator.store import Store


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2),b", {"a": "3", "b": ""}, True),
        ("!a", {"a": "1"}, False),
        ("app.kubernetes.io/name=x", {"app.kubernetes.io/name": "x"}, True),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selector_matching(selector, labels, expected):
    assert matches_labels(parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("selector", ["a in b", "=x", "a,,=b", "a=(x"])
def test_malformed_label_selectors_are_bad_requests(selector):
    with pytest.raises(ApiError) as error:
        parse_label_selector(selector)
    assert error.value.code == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [("500m", "0.5"), ("2", "2"), ("1Gi", str(2**30)), ("1G", "1000000000"), ("1e3", "1000")],
)
def test_quantities(value, expected):
    assert parse_quantity(value) == Decimal(expected)


def test_merge_patch_deletes_with_null_and_replaces_lists():
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(target, {"a": {"b": None}, "l": [3]}) == {"a": {"c": 2}, "l": [3]}


def test_strategic_merge_patch_merges_containers_by_name_and_honours_delete():
    target = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    patch = {"containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]}
    assert strategic_merge_patch(target, patch) == {"containers": [{"name": "a", "image": "z"}]}


def test_json_patch_on_a_missing_path_is_422():
    with pytest.raises(ApiError) as error:
        json_patch({"a": {}}, [{"op": "replace", "path": "/a/b", "value": 1}])
    assert error.value.code == 422


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("python", "docker.io/library/python:latest"),
        ("jupyter/base:5", "docker.io/jupyter/base:5"),
        ("quay.io/jupyterhub/singleuser:5", "quay.io/jupyterhub/singleuser:5"),
    ],
)
def test_image_references_normalize_like_containerd(image, expected):
    assert normalize(image) == expected


def test_image_map_matches_with_or_without_tag_then_the_default(tmp_path):
    images = ImageMap.parse([f"jupyter/scipy=/{tmp_path}/scipy"], tmp_path / "default")
    assert images.resolve("jupyter/scipy:2024") == Path(f"/{tmp_path}/scipy").resolve()
    assert images.resolve("other:1") == (tmp_path / "default").resolve()


def test_expand_follows_kubernetes_variable_references():
    assert expand("$(A)-$(MISSING)-$$(A)", {"A": "x"}) == "x-$(MISSING)-$(A)"


def test_map_path_prefers_the_longest_mount(tmp_path):
    mounts = [Mount("/home", tmp_path / "h"), Mount("/home/jovyan", tmp_path / "j")]
    assert map_path("/home/jovyan/work", mounts, tmp_path / "root") == tmp_path / "j" / "work"
    assert map_path("/etc/x", mounts, tmp_path / "root") == tmp_path / "root" / "etc" / "x"


def test_launch_rewrites_wildcard_and_mount_paths(tmp_path):
    pod = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {},
        "status": {"podIP": "127.77.1.9"},
    }
    container = {
        "name": "c",
        "image": "i",
        "args": ["jupyterhub-singleuser", "--ip=0.0.0.0", "--notebook-dir=/home/jovyan/work"],
        "env": [{"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:8888/user/x/"}],
    }
    home = tmp_path / "pvc"
    launch = build_launch(
        pod,
        container,
        venv=tmp_path / "venv",
        mounts=[Mount("/home/jovyan", home)],
        rootfs=tmp_path / "root",
        lookup=lambda plural, name: None,
        api_host="127.0.0.1",
        api_port=1,
    )
    assert launch.argv == [
        "jupyterhub-singleuser",
        "--ip=127.77.1.9",
        f"--notebook-dir={home}/work",
    ]
    assert launch.env["JUPYTERHUB_SERVICE_URL"] == "http://127.77.1.9:8888/user/x/"
    assert launch.env["HOME"] == str(home) and launch.cwd == home
    assert launch.env["PATH"].startswith(f"{tmp_path / 'venv'}/bin:")


def test_mount_paths_that_prefix_host_paths_leave_our_own_env_alone(tmp_path):
    pod = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {},
        "status": {"podIP": "127.77.1.9"},
    }
    launch = build_launch(
        pod,
        {"name": "c", "image": "i", "command": ["true"]},
        venv=Path("/work/venv"),  # a host path under what is, in the container, a mount
        mounts=[Mount("/work", tmp_path / "w")],
        rootfs=tmp_path / "root",
        lookup=lambda plural, name: None,
        api_host="127.0.0.1",
        api_port=1,
    )
    assert launch.env["PATH"].startswith("/work/venv/bin:")


def test_a_status_write_for_a_deleted_pod_misses_the_pod_created_again_under_its_name():
    """The kubelet's and scheduler's writes name the pod's uid: a worker of the
    deleted pod must not move the new one to Running (or bind it)."""
    store = Store()
    store.create("namespaces", "", {"metadata": {"name": "hub"}})
    pod_spec = {"containers": [{"name": "notebook", "image": "quay.io/jupyter/base-notebook"}]}
    body = {"metadata": {"name": "jupyter-alice"}, "spec": pod_spec}
    old = store.create("pods", "hub", body)
    store.remove("pods", "hub", "jupyter-alice")
    new = store.create("pods", "hub", body)
    assert old["metadata"]["uid"] != new["metadata"]["uid"]

    def run(pod):
        pod.setdefault("status", {})["phase"] = "Running"

    assert store.mutate("pods", "hub", "jupyter-alice", run, uid=old["metadata"]["uid"]) is None
    assert store.find("pods", "hub", "jupyter-alice") == new
    written = store.mutate("pods", "hub", "jupyter-alice", run, uid=new["metadata"]["uid"])
    assert written["status"]["phase"] == "Running"


def test_a_pod_ip_whose_port_something_else_holds_is_passed_over():
    """Two simulators (or a leftover server) on one host share 127.77.0.0/16."""
    pool = IpPool()
    with socket.socket() as squatter:
        squatter.bind(("127.77.1.2", 0))
        port = squatter.getsockname()[1]
        squatter.listen()
        assert pool.take(0, [port]) == "127.77.1.3"
    assert pool.take(0, [port]) == "127.77.1.4"  # round robin goes on
