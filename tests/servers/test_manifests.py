"""The user pod and claim: profile + options -> the exact objects sent to the
API, and every one of them valid for Kubernetes 1.37 (strict)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from servers import naming, services
from servers.spawners.base import SpawnSpec
from servers.spawners.manifests import (
    ManifestError,
    build_pod,
    build_pvc,
    resolve,
)
from tests.factories import GroupFactory, ProfileFactory
from tests.k8s_schema import assert_valid

IMAGE = "quay.io/jupyter/base-notebook:2025-10-20"
BASE = {"image": IMAGE}

SPEC = SpawnSpec(
    username="alice",
    server_name="",
    prefix="/user/alice/",
    api_token="tok",
    client_id="jupyterhub-user-alice",
    api_url="http://hub:8081/hub/api",
    public_url="https://hub.example.org",
    home=Path("/unused"),
)

HUB_ENV = {
    "JPY_API_TOKEN": "tok",
    "JUPYTERHUB_ACTIVITY_INTERVAL": "300",
    "JUPYTERHUB_ACTIVITY_URL": "http://hub:8081/hub/api/users/alice/activity",
    "JUPYTERHUB_API_TOKEN": "tok",
    "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    "JUPYTERHUB_BASE_URL": "/",
    "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
    "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
    "JUPYTERHUB_DEFAULT_URL": "/lab",
    "JUPYTERHUB_HOST": "",
    "JUPYTERHUB_OAUTH_ACCESS_SCOPES": (
        '["access:servers!server=alice/", "access:servers!user=alice"]'
    ),
    "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/oauth_callback",
    "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
    "JUPYTERHUB_OAUTH_SCOPES": '["access:servers!server=alice/", "access:servers!user=alice"]',
    "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/",
    "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/",
    "JUPYTERHUB_SERVER_NAME": "",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
    "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/alice/",
    "JUPYTERHUB_USER": "alice",
    "JUPYTER_IMAGE": IMAGE,
    "JUPYTER_IMAGE_SPEC": IMAGE,
}

LABELS = {
    "component": "singleuser-server",
    "app.kubernetes.io/component": "singleuser-server",
    "app.kubernetes.io/managed-by": "hub",
    "app.kubernetes.io/instance": "hub",
    "hub.jupyter.org/username": "alice",
    "hub.jupyter.org/servername": "",
}


def env_list(env: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v}
        for k, v in sorted(env.items())
    ]


DEFAULT_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "jupyter-alice",
        "namespace": "jhub",
        "labels": LABELS,
        "annotations": {"hub.jupyter.org/username": "alice", "hub.jupyter.org/servername": ""},
    },
    "spec": {
        "containers": [
            {
                "name": "notebook",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "args": ["jupyterhub-singleuser"],
                "workingDir": "/home/jovyan",
                "env": env_list(HUB_ENV),
                "ports": [{"name": "notebook-port", "containerPort": 8888}],
                "resources": {},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "runAsUser": 1000,
                    "runAsNonRoot": True,
                    "runAsGroup": 100,
                },
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
            }
        ],
        "restartPolicy": "OnFailure",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 100},
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
    },
}


def pod_for(spec: SpawnSpec = SPEC, base: dict[str, Any] = BASE) -> dict[str, Any]:
    settings = resolve(spec, base, namespace="jhub", instance="hub")
    pod = ApiClient().sanitize_for_serialization(build_pod(settings))
    assert_valid(pod)
    return pod


def expected(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """DEFAULT_POD with keys of the notebook container and of the pod spec replaced."""
    pod = copy.deepcopy(DEFAULT_POD)
    pod["spec"]["containers"][0].update(container or {})
    pod["spec"].update(spec)
    return pod


def test_default_pod_is_exactly_the_hardened_singleuser_pod():
    assert pod_for() == DEFAULT_POD


GPU_AFFINITY = [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]
SPREAD = {
    "weight": 100,
    "podAffinityTerm": {
        "labelSelector": {"matchLabels": {"component": "singleuser-server"}},
        "topologyKey": "kubernetes.io/hostname",
    },
}
TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SIDECAR = {"name": "sidecar", "image": "busybox:1.37", "args": ["sleep", "infinity"]}
INIT = {"name": "fix-perms", "image": "busybox:1.37", "args": ["true"]}


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        pytest.param(
            {"cpu_guarantee": 0.5, "cpu_limit": 2, "mem_guarantee": "1G", "mem_limit": "2G"},
            expected(
                {
                    "resources": {
                        "requests": {"cpu": "0.5", "memory": str(1024**3)},
                        "limits": {"cpu": "2", "memory": str(2 * 1024**3)},
                    },
                    "env": env_list(
                        {
                            **HUB_ENV,
                            "CPU_GUARANTEE": "0.5",
                            "CPU_LIMIT": "2",
                            "MEM_GUARANTEE": "1G",
                            "MEM_LIMIT": "2G",
                        }
                    ),
                }
            ),
            id="cpu-and-memory",
        ),
        pytest.param(
            {
                "extra_resource_limits": {"nvidia.com/gpu": "1"},
                "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
                "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-a100"},
                "tolerations": [TOLERATION],
            },
            expected(
                {
                    "resources": {
                        "requests": {"nvidia.com/gpu": "1"},
                        "limits": {"nvidia.com/gpu": "1"},
                    }
                },
                nodeSelector={"cloud.google.com/gke-accelerator": "nvidia-a100"},
                tolerations=[TOLERATION],
            ),
            id="gpu",
        ),
        pytest.param(
            {
                "node_affinity_required": GPU_AFFINITY,
                "pod_anti_affinity_preferred": [SPREAD],
                "pod_affinity_required": [SPREAD["podAffinityTerm"]],
                "scheduler_name": "hub-user-scheduler",
                "priority_class_name": "hub-default-priority",
            },
            expected(
                affinity={
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": GPU_AFFINITY
                        }
                    },
                    "podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            SPREAD["podAffinityTerm"]
                        ]
                    },
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [SPREAD]
                    },
                },
                schedulerName="hub-user-scheduler",
                priorityClassName="hub-default-priority",
            ),
            id="scheduling",
        ),
        pytest.param(
            {
                "image": "registry.example.org/lab:1",
                "image_pull_policy": "Always",
                "image_pull_secrets": ["regcred", {"name": "other"}],
            },
            expected(
                {
                    "image": "registry.example.org/lab:1",
                    "imagePullPolicy": "Always",
                    "env": env_list(
                        {
                            **HUB_ENV,
                            "JUPYTER_IMAGE": "registry.example.org/lab:1",
                            "JUPYTER_IMAGE_SPEC": "registry.example.org/lab:1",
                        }
                    ),
                },
                imagePullSecrets=[{"name": "regcred"}, {"name": "other"}],
            ),
            id="image-and-pull-secrets",
        ),
        pytest.param(
            {
                "cmd": ["start-notebook.sh"],
                "args": ["--ServerApp.log_level=DEBUG"],
                "working_dir": "/srv/work",
                "environment": {
                    "EDITOR": "vim",
                    "SECRET": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                },
            },
            expected(
                {
                    "args": ["start-notebook.sh", "--ServerApp.log_level=DEBUG"],
                    "workingDir": "/srv/work",
                    "env": env_list(
                        {
                            **HUB_ENV,
                            "EDITOR": "vim",
                            "SECRET": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        }
                    ),
                }
            ),
            id="command-and-environment",
        ),
        pytest.param(
            {
                "volumes": [
                    {"name": "data", "nfs": {"server": "nfs.example.org", "path": "/data"}},
                    {"name": "shared", "persistentVolumeClaim": {"claimName": "team-shared"}},
                ],
                "volume_mounts": [
                    {"name": "data", "mountPath": "/data", "readOnly": True},
                    {"name": "shared", "mountPath": "/shared", "subPath": "{username}"},
                ],
            },
            expected(
                {
                    "volumeMounts": [
                        {"name": "home", "mountPath": "/home/jovyan"},
                        {"name": "data", "mountPath": "/data", "readOnly": True},
                        {"name": "shared", "mountPath": "/shared", "subPath": "alice"},
                    ]
                },
                volumes=[
                    {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
                    {"name": "data", "nfs": {"server": "nfs.example.org", "path": "/data"}},
                    {"name": "shared", "persistentVolumeClaim": {"claimName": "team-shared"}},
                ],
            ),
            id="shared-volumes-ro-and-rw",
        ),
        pytest.param(
            {
                "init_containers": [INIT],
                "extra_containers": [SIDECAR],
                "lifecycle_hooks": {"postStart": {"exec": {"command": ["sh", "-c", "true"]}}},
                "extra_labels": {"team": "physics", "component": "spoofed"},
                "extra_annotations": {"example.org/cost-center": "42"},
            },
            {
                **expected(
                    {"lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "true"]}}}},
                    initContainers=[INIT],
                ),
                "metadata": {
                    "name": "jupyter-alice",
                    "namespace": "jhub",
                    "labels": {"team": "physics", **LABELS},
                    "annotations": {
                        "example.org/cost-center": "42",
                        "hub.jupyter.org/username": "alice",
                        "hub.jupyter.org/servername": "",
                    },
                },
            },
            id="init-sidecar-hooks-labels",
        ),
        pytest.param(
            {
                "uid": 0,
                "gid": 0,
                "fs_gid": None,
                "container_security_context": {"readOnlyRootFilesystem": True},
                "pod_security_context": {"runAsNonRoot": False},
                "service_account": "lab-runner",
            },
            expected(
                {
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsUser": 0,
                        "runAsNonRoot": False,
                        "runAsGroup": 0,
                        "readOnlyRootFilesystem": True,
                    }
                },
                securityContext={
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "runAsNonRoot": False,
                },
                serviceAccountName="lab-runner",
                automountServiceAccountToken=True,
            ),
            id="security-overrides",
        ),
        pytest.param(
            {
                "extra_pod_config": {"hostname": "lab", "dnsPolicy": "ClusterFirst"},
                "extra_container_config": {"stdin": True},
            },
            expected({"stdin": True}, hostname="lab", dnsPolicy="ClusterFirst"),
            id="escape-hatches",
        ),
    ],
)
def test_overrides_build_the_exact_pod(overrides, want):
    if "extra_containers" in overrides:
        want["spec"]["containers"].append(SIDECAR)
    assert pod_for(dataclasses.replace(SPEC, overrides=overrides)) == want


def test_storage_off_leaves_the_pod_without_a_claim():
    pod = pod_for(dataclasses.replace(SPEC, overrides={"storage_pvc_ensure": False}))
    assert pod["spec"]["volumes"] == []
    assert pod["spec"]["containers"][0]["volumeMounts"] == []


def test_base_then_profile_then_choice_and_dicts_merge():
    base = {
        "image": "base:1",
        "node_selector": {"pool": "user", "zone": "a"},
        "environment": {"A": "base", "B": "base"},
        "cpu_limit": 1,
    }
    spec = dataclasses.replace(
        SPEC,
        image="profile:1",
        environment={"B": "profile"},
        overrides={"node_selector": {"pool": "gpu"}},
    )
    settings = resolve(spec, base, namespace="jhub", instance="hub")
    assert settings.image == "profile:1"
    assert settings.node_selector == {"pool": "gpu", "zone": "a"}
    assert settings.env["A"] == "base"
    assert settings.env["B"] == "profile"
    assert settings.cpu_limit == 1


def test_unknown_setting_is_a_clear_error():
    with pytest.raises(ManifestError, match=r"unknown Kubernetes setting.*imgae"):
        resolve(
            dataclasses.replace(SPEC, overrides={"imgae": "x"}), BASE, namespace="n", instance="h"
        )


def test_bad_memory_size_is_a_clear_error():
    spec = dataclasses.replace(SPEC, mem_limit="lots")
    with pytest.raises(ManifestError, match="'lots' is not a memory size"):
        build_pod(resolve(spec, BASE, namespace="n", instance="h"))


@pytest.mark.parametrize(
    ("base", "want"),
    [
        (
            {},
            {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        ),
        (
            {
                "storage_class": "fast-ssd",
                "storage_capacity": "50Gi",
                "storage_access_modes": ["ReadWriteMany"],
            },
            {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "50Gi"}},
                "storageClassName": "fast-ssd",
            },
        ),
    ],
)
def test_claim_spec_follows_the_storage_settings(base, want):
    settings = resolve(SPEC, {**BASE, **base}, namespace="jhub", instance="hub")
    pvc = build_pvc(settings)
    assert_valid(pvc)
    assert pvc["metadata"]["name"] == "claim-alice"
    assert pvc["metadata"]["labels"][naming.LABEL_APP_COMPONENT] == "singleuser-storage"
    assert pvc["spec"] == want


def test_named_server_of_an_escaped_user_gets_its_own_pod_and_the_users_claim():
    spec = dataclasses.replace(SPEC, username="john.doe", server_name="gpu.1", prefix="/user/j/")
    settings = resolve(spec, BASE, namespace="jhub", instance="hub")
    assert settings.name == naming.pod_name("john.doe", "gpu.1")
    assert settings.pvc_name == naming.pvc_name("john.doe")
    assert settings.annotations[naming.ANNOTATION_USER] == "john.doe"
    assert_valid(build_pod(settings))


@pytest.mark.django_db
def test_profile_and_chosen_option_reach_the_pod(alice):
    profile = ProfileFactory(
        slug="gpu",
        image="lab:1",
        cpu_limit=4,
        extra_resource_limits={"nvidia.com/gpu": "1"},
        spawner_overrides={"node_selector": {"pool": "gpu"}, "tolerations": [TOLERATION]},
        options={
            "image": {
                "display_name": "Image",
                "choices": {
                    "torch": {"display_name": "PyTorch", "overrides": {"image": "torch:2"}},
                    "jax": {
                        "display_name": "JAX",
                        "default": True,
                        "overrides": {"image": "jax:1"},
                    },
                },
            }
        },
    )
    server = services.get_or_create_server(alice, "")
    server.profile = profile
    server.user_options = {"profile": "gpu", "image": "torch"}
    pod = pod_for(services.build_spec(server, "tok"))
    container = pod["spec"]["containers"][0]
    assert container["image"] == "torch:2"
    assert container["resources"]["limits"] == {"cpu": "4", "nvidia.com/gpu": "1"}
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert pod["spec"]["tolerations"] == [TOLERATION]


@pytest.mark.django_db
def test_profile_of_another_group_cannot_be_picked(carol, api_client_for):
    physics = GroupFactory(name="physics")
    profile = ProfileFactory(slug="gpu")
    profile.allowed_groups.add(physics)
    response = api_client_for(carol).post(
        "/hub/api/users/carol/server", {"profile": "gpu"}, format="json"
    )
    assert response.status_code == 400
    assert "not allowed" in response.json()["message"]
    assert services.pick_profile(carol, None) is None
