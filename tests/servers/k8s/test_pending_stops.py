"""Stops wait for pods terminating without holding the worker's threads
(servers/services/stopping.py): against the Kubernetes API simulator, pods
whose server ignores SIGTERM (it exits only when the simulated kubelet kills
it at the end of the grace period) stop together on a worker with ONE
thread, and a start queued behind their stops runs while they terminate."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

from hubsite.celery import app
from servers import naming, services
from servers.models import Server, ServerEvent
from tests.factories import ProfileFactory, UserFactory
from tests.k8s import PYTHON_IMAGE
from tests.live import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
State = Server.State

# A stand-in server (not Jupyter: only what the hub's readiness check asks):
# 200 on every path, at JUPYTERHUB_SERVICE_URL's address, deaf to SIGTERM.
STUBBORN = """
import os, signal, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
signal.signal(signal.SIGTERM, signal.SIG_IGN)
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"version": "stand-in"}')
    def log_message(self, *args):
        pass
ThreadingHTTPServer((url.hostname, url.port), Answer).serve_forever()
"""
GRACE = 15  # long enough that the start below finishes well inside it


@pytest.fixture
def one_thread_worker(live_hub):
    with start_worker(
        app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=60
    ) as worker:
        yield worker


def start_and_wait(user) -> Server:
    server = services.get_or_create_server(user, "")
    services.request_start(server, by="test", user_options={})
    wait_for(
        lambda: Server.objects.get(pk=server.pk).state in (State.RUNNING, State.FAILED),
        timeout=60,
        what=f"{user.username}'s server to start",
    )
    server.refresh_from_db()
    assert server.state == State.RUNNING, server.failure
    return server


def test_a_start_runs_while_earlier_stops_wait_for_their_pods(kube, settings, one_thread_worker):
    settings.HUB_STOP_GRACE = GRACE
    ProfileFactory(
        slug="stubborn",
        default=True,
        spawner_overrides={"image": PYTHON_IMAGE, "cmd": ["python", "-c", STUBBORN]},
    )
    stopping = [start_and_wait(UserFactory(username=f"going{i}")) for i in range(3)]
    for server in stopping:
        services.request_stop(server, by="test")

    # queued behind the three stops, on the worker's one thread
    started = start_and_wait(UserFactory(username="coming"))
    states = dict(Server.objects.filter(pk__in=[s.pk for s in stopping]).values_list("pk", "state"))
    assert set(states.values()) == {State.STOPPING}  # still terminating, none holds the thread
    assert len(services.pending_stops()) == 3

    wait_for(
        lambda: not Server.objects.filter(pk__in=states, state=State.STOPPING).exists(),
        timeout=GRACE + 30,
        what="the stops to finish",
    )
    for server in stopping:
        server.refresh_from_db()
        assert server.state == State.STOPPED
        assert server.spawner_state == {}
        assert server.events.filter(kind=ServerEvent.Kind.STOPPED).count() == 1
    pods = {p.metadata.name for p in kube.core.list_namespaced_pod(kube.namespace).items}
    assert pods == {naming.pod_name("coming", "")}
    assert len(services.pending_stops()) == 0
    services.request_stop(started, by="test")
    wait_for(
        lambda: Server.objects.get(pk=started.pk).state == State.STOPPED,
        timeout=GRACE + 30,
        what="the last stop",
    )
