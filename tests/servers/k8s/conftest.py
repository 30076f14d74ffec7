"""The hub with HUB_SPAWNER=kubernetes against the Kubernetes API simulator
(tests/k8s.py: a SIMULATOR of the API server and kubelet, not a cluster), or
against the real cluster HUB_TEST_KUBECONFIG names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.spawners.kubernetes import close_clusters

# The simulator runs every image from .venv-user; on a real cluster the image
# must have jupyterhub-singleuser (JupyterHub's singleuser image has).
IMAGE = "quay.io/jupyterhub/singleuser:5"


@pytest.fixture
def kube(k8s_cluster, settings) -> Iterator[object]:
    """Spawns go to a fresh namespace; the process's watches stop afterwards.
    List it before start_server so that servers are stopped before the
    namespace goes."""
    settings.HUB_SPAWNER = "kubernetes"
    settings.HUB_K8S_KUBECONFIG = str(k8s_cluster.kubeconfig)
    settings.HUB_K8S_NAMESPACE = k8s_cluster.namespace
    settings.HUB_K8S_INSTANCE = "hub"
    settings.HUB_K8S_IMAGE = IMAGE
    settings.HUB_K8S_SPAWNER_DEFAULTS = {}
    yield k8s_cluster
    close_clusters()
