"""/hub/metrics: Prometheus text with JupyterHub's names, scope-protected,
summing what every process observed (prometheus-client multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from servers.models import Server
from tests.factories import ServerFactory
from tests.live import ROOT


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.django_db
def test_metrics_need_the_read_metrics_scope(alice, admin, api_client_for):
    assert APIClient().get("/hub/metrics").status_code in (401, 403)
    assert api_client_for(alice).get("/hub/metrics").status_code == 403
    assert api_client_for(admin, ["read:users"]).get("/hub/metrics").status_code == 403
    response = api_client_for(admin, ["read:metrics"]).get("/hub/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_metrics_can_be_open_like_authenticate_prometheus_false(settings):
    settings.HUB_AUTHENTICATE_PROMETHEUS = False
    assert APIClient().get("/hub/metrics").status_code == 200


@pytest.mark.django_db
def test_levels_come_from_the_database(alice, bob, carol, admin, api_client_for):
    ServerFactory(user=alice, state=Server.State.RUNNING, url="http://127.0.0.1:1")
    ServerFactory(user=bob, state=Server.State.STARTING)
    ServerFactory(user=carol, state=Server.State.FAILED, failure="boom")
    alice.note_activity(alice.created)
    found = samples(api_client_for(admin, ["read:metrics"]).get("/hub/metrics").content)
    assert found[("jupyterhub_running_servers", ())] == 1
    assert found[("hub_pending_spawns", ())] == 1
    assert found[("hub_routes", ())] == 1
    assert found[("hub_failed_servers_last_hour", ())] == 1
    assert found[("jupyterhub_total_users", ())] == 4
    assert found[("jupyterhub_active_users", (("period", "24h"),))] == 1
    # every status exists before it first happens (dashboards, alerts)
    for status in ("success", "failure", "throttled"):
        key = ("jupyterhub_server_spawn_duration_seconds_count", (("status", status),))
        assert key in found


@pytest.mark.django_db
def test_request_durations_are_labelled_by_view(admin, api_client_for):
    client = api_client_for(admin, ["read:metrics", "list:users", "read:users"])
    client.get("/hub/api/users")
    found = samples(client.get("/hub/metrics").content)
    counts = {
        dict(labels)["handler"]: value
        for (name, labels), value in found.items()
        if name == "jupyterhub_request_duration_seconds_count" and dict(labels)["code"] == "200"
    }
    assert any(handler == "accounts.api.views.UserListView" for handler in counts), counts


@pytest.mark.django_db
def test_events_observed_in_another_process_are_summed(admin, api_client_for):
    """A Celery worker is another process: what it observes must be scraped."""
    key = ("hub_culls_total", (("kind", "user"),))
    client = api_client_for(admin, ["read:metrics"])
    before = samples(client.get("/hub/metrics").content).get(key, 0)
    code = "from servers import metrics; metrics.CULLS.labels(kind='user').inc(3)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings"}
    subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert samples(client.get("/hub/metrics").content)[key] == before + 3
