"""Start, stop, read and remove servers through /hub/api (no processes: the
enqueued Celery tasks are captured, not run; the lead's e2e tests run them)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import ApiToken
from servers import services
from servers.models import Profile, Server, ServerEvent
from servers.spawners.zygote import process_start_time
from tests.factories import ProfileFactory, ServerFactory
from tests.servers.hooks import enqueues

pytestmark = pytest.mark.django_db
State = Server.State


def server_token_client(user, name=""):
    """A client holding the server's own token (the server role's scopes)."""
    server = ServerFactory(user=user, name=name, state=State.RUNNING, url="http://127.0.0.1:9")
    token, raw = account_services.issue_token(
        user,
        scopes=[f"users:activity!user={user.username}", f"access:servers!server={user}/{name}"],
        kind=ApiToken.Kind.SERVER,
        check_owner=False,
    )
    ApiToken.objects.filter(pk=token.pk).update(server=server)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"token {raw}")
    return client


def test_start_requests_a_spawn_and_answers_202(
    alice, api_client_for, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        response = api_client_for(alice).post("/hub/api/users/alice/server")
    assert response.status_code == 202
    server = Server.objects.get(user=alice, name="")
    assert server.state == State.STARTING
    assert len(enqueues(queued)) == 1


def test_second_start_while_pending_enqueues_nothing_and_answers_202(
    alice, api_client_for, django_capture_on_commit_callbacks
):
    client = api_client_for(alice)
    with django_capture_on_commit_callbacks() as queued:
        assert client.post("/hub/api/users/alice/server").status_code == 202
        assert client.post("/hub/api/users/alice/server").status_code == 202
    assert len(enqueues(queued)) == 1
    assert ServerEvent.objects.filter(kind=ServerEvent.Kind.START_REQUESTED).count() == 1


def test_start_of_running_server_answers_400_as_jupyterhub_does(alice, api_client_for):
    # JupyterHub 6.1.1's UserServerAPIHandler.post: HTTPError(400, "<name> is already running")
    live = {"pid": os.getpid(), "started": process_start_time(os.getpid())}
    ServerFactory(user=alice, state=State.RUNNING, url="http://127.0.0.1:9", spawner_state=live)
    ServerFactory(user=alice, name="box", state=State.RUNNING, spawner_state=live)
    client = api_client_for(alice)
    response = client.post("/hub/api/users/alice/server")
    assert response.status_code == 400
    assert response.json()["message"] == "alice is already running"
    named = client.post("/hub/api/users/alice/servers/box")
    assert (named.status_code, named.json()["message"]) == (400, "alice:box is already running")
    assert Server.objects.get(user=alice, name="").state == State.RUNNING  # nothing changed


def test_start_of_a_running_server_whose_process_died_starts_it_again(
    alice, api_client_for, django_capture_on_commit_callbacks
):
    dead = subprocess.Popen(["true"])
    dead.wait()
    ServerFactory(user=alice, state=State.RUNNING, spawner_state={"pid": dead.pid, "started": "0"})
    with django_capture_on_commit_callbacks() as queued:
        response = api_client_for(alice).post("/hub/api/users/alice/server")
    assert response.status_code == 202
    assert len(enqueues(queued)) == 1
    server = Server.objects.get(user=alice, name="")
    assert server.state == State.STARTING
    kinds = list(server.events.order_by("id").values_list("kind", flat=True))
    assert kinds == [ServerEvent.Kind.FAILED, ServerEvent.Kind.START_REQUESTED]


def test_start_while_stopping_is_400(alice, api_client_for):
    ServerFactory(user=alice, state=State.STOPPING)
    response = api_client_for(alice).post("/hub/api/users/alice/server")
    assert response.status_code == 400
    assert response.json()["message"] == "alice is pending stop"


def test_start_with_unknown_profile_is_400(alice, api_client_for):
    ProfileFactory(slug="small", default=True)
    response = api_client_for(alice).post(
        "/hub/api/users/alice/server", {"profile": "huge"}, format="json"
    )
    assert response.status_code == 400
    assert "huge" in response.json()["message"]


def test_start_with_user_options_stores_them(alice, api_client_for):
    ProfileFactory(slug="small", default=True)
    body = {"user_options": {"profile": "small"}, "display_name": "My box"}
    response = api_client_for(alice).post("/hub/api/users/alice/servers/box", body, format="json")
    assert response.status_code == 202
    server = Server.objects.get(user=alice, name="box")
    assert server.user_options == {"profile": "small"}
    assert server.display_name == "My box"
    assert server.profile == Profile.objects.get(slug="small")


@pytest.mark.parametrize("name", ["Upper", "-dash", "a" * 64, "sp ace"])
def test_invalid_server_name_is_400(alice, api_client_for, name):
    response = api_client_for(alice).post(f"/hub/api/users/alice/servers/{name}")
    assert response.status_code in (400, 404)  # a space never reaches the view
    assert not Server.objects.filter(user=alice).exists()


def test_invalid_server_name_message(alice, api_client_for):
    response = api_client_for(alice).post("/hub/api/users/alice/servers/Bad")
    assert response.status_code == 400
    assert "Invalid server name" in response.json()["message"]


def test_spawn_limit_answers_429(alice, bob, api_client_for, settings):
    settings.HUB_CONCURRENT_SPAWN_LIMIT = 1
    ServerFactory(user=bob, state=State.STARTING)
    response = api_client_for(alice).post("/hub/api/users/alice/server")
    assert response.status_code == 429
    assert Server.objects.get(user=alice).state == State.STOPPED


def test_named_servers_can_be_disabled(alice, api_client_for, settings):
    settings.HUB_ALLOW_NAMED_SERVERS = False
    response = api_client_for(alice).post("/hub/api/users/alice/servers/box")
    assert response.status_code == 400


def test_other_user_cannot_start_or_stop(alice, bob, api_client_for):
    ServerFactory(user=alice, state=State.RUNNING)
    client = api_client_for(bob)
    assert client.post("/hub/api/users/alice/server").status_code == 403
    assert client.delete("/hub/api/users/alice/server").status_code == 403
    assert Server.objects.get(user=alice).state == State.RUNNING


def test_admin_can_start_anyones_server(alice, admin, api_client_for):
    assert api_client_for(admin).post("/hub/api/users/alice/server").status_code == 202


def test_start_for_unknown_user_is_404_for_admin(admin, api_client_for):
    assert api_client_for(admin).post("/hub/api/users/nobody/server").status_code == 404


def test_stop_running_server_answers_202_and_enqueues_once(
    alice, api_client_for, django_capture_on_commit_callbacks
):
    ServerFactory(user=alice, state=State.RUNNING, url="http://127.0.0.1:9")
    client = api_client_for(alice)
    with django_capture_on_commit_callbacks() as queued:
        assert client.delete("/hub/api/users/alice/server").status_code == 202
        assert client.delete("/hub/api/users/alice/server").status_code == 202
    assert len(enqueues(queued)) == 1
    assert Server.objects.get(user=alice).state == State.STOPPING


def test_stop_of_stopped_or_missing_server_answers_204(alice, api_client_for):
    client = api_client_for(alice)
    assert client.delete("/hub/api/users/alice/server").status_code == 204
    ServerFactory(user=alice, state=State.STOPPED)
    assert client.delete("/hub/api/users/alice/server").status_code == 204


def test_remove_of_stopped_named_server_deletes_it(alice, api_client_for):
    ServerFactory(user=alice, name="box", state=State.STOPPED)
    response = api_client_for(alice).delete(
        "/hub/api/users/alice/servers/box", {"remove": True}, format="json"
    )
    assert response.status_code == 204
    assert not Server.objects.filter(user=alice, name="box").exists()


def test_remove_of_running_named_server_deletes_it_after_the_stop(alice, api_client_for):
    server = ServerFactory(user=alice, name="box", state=State.RUNNING)
    response = api_client_for(alice).delete(
        "/hub/api/users/alice/servers/box", {"remove": True}, format="json"
    )
    assert response.status_code == 202
    assert Server.objects.get(pk=server.pk).state == State.STOPPING
    services.stop_on_spawner(server.pk)  # what the stop task does
    assert not Server.objects.filter(pk=server.pk).exists()


def test_stop_without_remove_keeps_the_named_server(alice, api_client_for):
    server = ServerFactory(user=alice, name="box", state=State.RUNNING)
    assert api_client_for(alice).delete("/hub/api/users/alice/servers/box").status_code == 202
    services.stop_on_spawner(server.pk)
    assert Server.objects.get(pk=server.pk).state == State.STOPPED


def test_default_server_cannot_be_removed(alice, api_client_for):
    response = api_client_for(alice).delete(
        "/hub/api/users/alice/server", {"remove": True}, format="json"
    )
    assert response.status_code == 400


def test_stop_of_unknown_named_server_is_404(alice, api_client_for):
    assert api_client_for(alice).delete("/hub/api/users/alice/servers/nope").status_code == 404


def test_get_named_server_model(alice, api_client_for, settings):
    settings.HUB_PUBLIC_URL = "https://hub.example.org"
    ServerFactory(user=alice, name="box", state=State.RUNNING, user_options={"a": "b"})
    response = api_client_for(alice).get("/hub/api/users/alice/servers/box")
    assert response.status_code == 200
    model = response.json()
    assert model["name"] == "box"
    assert model["ready"] is True
    assert model["pending"] is None
    assert model["stopped"] is False
    assert model["url"] == "/user/alice/box/"
    assert model["progress_url"] == "/hub/api/users/alice/servers/box/progress"
    assert model["full_url"] == "https://hub.example.org/user/alice/box/"
    assert model["user_options"] == {"a": "b"}
    assert "state" not in model


def test_admin_sees_spawner_state(alice, admin, api_client_for):
    ServerFactory(user=alice, name="box", state=State.RUNNING, spawner_state={"pid": 1})
    model = api_client_for(admin).get("/hub/api/users/alice/servers/box").json()
    assert model["state"] == {"pid": 1}


def test_put_creates_a_named_server_once(alice, api_client_for):
    client = api_client_for(alice)
    response = client.put(
        "/hub/api/users/alice/servers/box", {"display_name": "Box"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["display_name"] == "Box"
    assert response.json()["stopped"] is True
    assert client.put("/hub/api/users/alice/servers/box").status_code == 409


def test_patch_renames_a_stopped_server(alice, api_client_for):
    ServerFactory(user=alice, name="box", state=State.STOPPED)
    response = api_client_for(alice).patch(
        "/hub/api/users/alice/servers/box", {"name": "crate"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "crate"
    assert Server.objects.filter(user=alice, name="crate").exists()


def test_patch_of_running_server_is_400(alice, api_client_for):
    ServerFactory(user=alice, name="box", state=State.RUNNING)
    response = api_client_for(alice).patch(
        "/hub/api/users/alice/servers/box", {"display_name": "x"}, format="json"
    )
    assert response.status_code == 400


# --- progress -----------------------------------------------------------------


def events_of(response):
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line[6:]) for line in body.split("\n") if line.startswith("data: ")]


def test_progress_of_running_server_is_one_ready_event(alice, api_client_for):
    ServerFactory(user=alice, state=State.RUNNING)
    response = api_client_for(alice).get("/hub/api/users/alice/server/progress")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert events_of(response) == [
        {
            "progress": 100,
            "ready": True,
            "message": "Server ready at /user/alice/",
            "html_message": 'Server ready at <a href="/user/alice/">/user/alice/</a>',
            "url": "/user/alice/",
        }
    ]


def test_progress_streams_events_of_the_current_start_until_ready(alice, api_client_for):
    server = ServerFactory(user=alice, name="box", state=State.STARTING)
    Kind = ServerEvent.Kind
    ServerEvent.objects.create(server=server, kind=Kind.START_REQUESTED, message="old start")
    ServerEvent.objects.create(server=server, kind=Kind.FAILED, message="old failure")
    ServerEvent.objects.create(server=server, kind=Kind.START_REQUESTED, message="Server requested")
    ServerEvent.objects.create(server=server, kind=Kind.PROGRESS, progress=50, message="Waiting")
    ServerEvent.objects.create(server=server, kind=Kind.READY, progress=100, message="ready")
    response = api_client_for(alice).get("/hub/api/users/alice/servers/box/progress")
    events = events_of(response)
    assert events[0] == {"progress": 0, "message": "Server requested"}
    assert events[1] == {"progress": 50, "message": "Waiting"}
    assert events[2]["ready"] is True
    assert events[2]["url"] == "/user/alice/box/"
    assert len(events) == 3


def test_progress_ends_with_failed_event(alice, api_client_for):
    server = ServerFactory(user=alice, state=State.STARTING)
    ServerEvent.objects.create(server=server, kind=ServerEvent.Kind.START_REQUESTED)
    ServerEvent.objects.create(server=server, kind=ServerEvent.Kind.FAILED, message="no memory")
    events = events_of(api_client_for(alice).get("/hub/api/users/alice/server/progress"))
    assert events[-1] == {"progress": 100, "failed": True, "message": "Spawn failed: no memory"}


def test_progress_of_failed_server_reports_the_reason(alice, api_client_for):
    ServerFactory(user=alice, state=State.FAILED, failure="port in use")
    events = events_of(api_client_for(alice).get("/hub/api/users/alice/server/progress"))
    assert events == [{"progress": 100, "failed": True, "message": "Spawn failed: port in use"}]


def test_progress_of_stopped_server_is_400(alice, api_client_for):
    ServerFactory(user=alice, state=State.STOPPED)
    response = api_client_for(alice).get("/hub/api/users/alice/server/progress")
    assert response.status_code == 400


def test_progress_of_other_users_server_is_403(alice, bob, api_client_for):
    ServerFactory(user=alice, state=State.RUNNING)
    assert api_client_for(bob).get("/hub/api/users/alice/server/progress").status_code == 403


# --- the server's own token -------------------------------------------------------


def test_server_token_cannot_start_stop_or_read_other_users(alice, bob):
    client = server_token_client(alice)
    assert client.post("/hub/api/users/alice/servers/other").status_code == 403
    assert client.delete("/hub/api/users/alice/server").status_code == 403
    assert client.get("/hub/api/users/bob").status_code == 403
    assert client.get("/hub/api/users").status_code == 403
    assert client.post("/hub/api/users/alice/tokens").status_code == 403
    assert (
        client.post(
            "/hub/api/users/bob/activity", {"last_activity": "2026-01-01T00:00:00Z"}, format="json"
        ).status_code
        == 403
    )
