"""HUB_SPAWNER=kubernetes: strict settings and the checks that stop a
misconfigured hub at start."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hubsite import checks, env


@pytest.fixture
def kubernetes(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    settings.HUB_SPAWNER = "kubernetes"
    settings.HUB_K8S_KUBECONFIG = str(kubeconfig)
    settings.HUB_K8S_NAMESPACE = "jhub"
    settings.HUB_K8S_INSTANCE = "hub"
    settings.HUB_K8S_SPAWNER_DEFAULTS = {}
    return settings


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_a_complete_configuration_passes(kubernetes):
    assert checks.check_kubernetes_spawner() == []


def test_local_spawner_is_not_checked(settings):
    settings.HUB_SPAWNER = "local"
    settings.HUB_K8S_NAMESPACE = ""
    assert checks.check_kubernetes_spawner() == []


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("HUB_K8S_KUBECONFIG", "/nonexistent/kubeconfig", "hubsite.E020"),
        ("HUB_K8S_KUBECONFIG", "", "hubsite.E021"),
        ("HUB_K8S_NAMESPACE", "", "hubsite.E022"),
        ("HUB_K8S_INSTANCE", "My Hub", "hubsite.E023"),
        ("HUB_K8S_INSTANCE", "", "hubsite.E023"),
        ("HUB_K8S_SPAWNER_DEFAULTS", {"imgae": "x"}, "hubsite.E024"),
    ],
)
def test_misconfiguration_is_an_error_naming_the_variable(kubernetes, name, value, error):
    setattr(kubernetes, name, value)
    found = checks.check_kubernetes_spawner()
    assert ids(found) == [error]
    assert name in found[0].msg or "no cluster" in found[0].msg


def test_in_cluster_needs_no_kubeconfig(kubernetes, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    kubernetes.HUB_K8S_KUBECONFIG = ""
    assert checks.check_kubernetes_spawner() == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[1, 2]", "must be a JSON object"),
        ("{nope", "is not valid JSON"),
    ],
)
def test_spawner_defaults_must_be_a_json_object(monkeypatch, raw, message):
    monkeypatch.setenv("HUB_K8S_SPAWNER_DEFAULTS", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        env.env_json_object("HUB_K8S_SPAWNER_DEFAULTS")


def test_spawner_defaults_read_from_a_file(monkeypatch, tmp_path):
    path = tmp_path / "defaults.json"
    path.write_text('{"node_selector": {"pool": "user"}}')
    monkeypatch.setenv("HUB_K8S_SPAWNER_DEFAULTS_FILE", str(path))
    assert env.env_json_object("HUB_K8S_SPAWNER_DEFAULTS") == {"node_selector": {"pool": "user"}}
