"""The hub's probe, as k8s/base/hub/deployment.yaml sends it, gets its 200."""

from __future__ import annotations

from tests.deploy.objects import container, find


def hub_probe(render_variant) -> tuple[str, dict[str, str]]:
    hub = container(find(render_variant("production"), "Deployment", "hub"), "hub")
    probe = hub["readinessProbe"]["httpGet"]
    return probe["path"], {h["name"]: h["value"] for h in probe["httpHeaders"]}


def test_hub_probe_request_is_answered_with_the_version(client, settings, render_variant):
    path, headers = hub_probe(render_variant)
    settings.ALLOWED_HOSTS = ["hub.example.org", "hub"]  # restricted, as the README says
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    assert response.json()["version"] == response["X-JupyterHub-Version"]


def test_hub_probe_fails_when_allowed_hosts_forget_the_service_name(
    client, settings, render_variant
):
    path, headers = hub_probe(render_variant)
    settings.ALLOWED_HOSTS = ["hub.example.org"]
    assert client.get(path, headers=headers).status_code == 400
