"""The server pages: home, the profile picker, the pending page, the landing
spots for /user/... without a route, and the servers side of the admin.

Starts requested here are not executed (on-commit callbacks do not run inside
test transactions): these tests check what the pages ask of servers.services."""

from __future__ import annotations

import pytest
from django.test import Client

from servers.models import Server, ServerEvent
from tests.factories import ProfileFactory, ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
State = Server.State

IMAGE_OPTION = {
    "image": {
        "display_name": "Image",
        "choices": {
            "base": {"display_name": "Base", "default": True, "overrides": {}},
            "scipy": {"display_name": "SciPy", "overrides": {"image": "scipy:1"}},
        },
        "unlisted_choice": {
            "enabled": True,
            "display_name": "Other image",
            "validation_regex": r"^[a-z0-9./:-]+$",
            "validation_message": "Must be an image name like repo/name:tag",
        },
    }
}


@pytest.fixture
def as_alice(client, alice) -> Client:
    client.force_login(alice)
    return client


@pytest.fixture
def small(db):
    return ProfileFactory(slug="small", display_name="Small", default=True, options=IMAGE_OPTION)


@pytest.fixture
def gpu(team):
    profile = ProfileFactory(slug="gpu", display_name="GPU box")
    profile.allowed_groups.add(team)
    return profile


def running(user, name: str = "") -> Server:
    return ServerFactory(user=user, name=name, state=State.RUNNING, url="http://127.0.0.1:9")


# --- home -----------------------------------------------------------------------


def test_home_requires_login(client):
    assert client.get("/hub/home")["Location"] == "/hub/login?next=/hub/home"


def test_home_offers_the_profile_picker_when_profiles_exist(as_alice, small):
    response = as_alice.get("/hub/home")
    assert response.status_code == 200
    assert b'href="/hub/spawn/alice"' in response.content


def test_without_profiles_start_posts_the_start_itself(as_alice, alice):
    content = as_alice.get("/hub/home").content.decode()
    form = content[content.rindex("<form", 0, content.index('id="start-server"')) :]
    assert form.startswith('<form method="post" action="/hub/spawn/alice"')
    assert "csrfmiddlewaretoken" in form.split("</form>")[0]
    response = as_alice.post("/hub/spawn/alice")
    assert response["Location"] == "/hub/spawn-pending/alice"
    assert alice.servers.get(name="").state == State.STARTING


def test_home_follows_pending_servers_with_its_script(as_alice, alice):
    ServerFactory(user=alice, name="", state=State.STOPPING)
    ServerFactory(user=alice, name="box", state=State.STARTING)
    content = as_alice.get("/hub/home").content.decode()
    assert 'data-user-url="/hub/api/users/alice?include_stopped_servers"' in content
    assert 'data-server-name="" data-server-state="stopping"' in content
    assert 'data-server-name="box" data-server-state="starting"' in content
    assert '<script src="/hub/static/hub/home.js" defer></script>' in content
    assert "<script>" not in content  # the CSP allows no inline script


def test_the_home_scripts_api_call_works_with_the_session(as_alice, alice):
    ServerFactory(user=alice, name="", state=State.STOPPING)
    response = as_alice.get("/hub/api/users/alice?include_stopped_servers")
    assert response.status_code == 200
    assert response.json()["servers"][""]["pending"] == "stop"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "just now"), (59, "just now"), (60, "1\xa0minute ago"), (7200, "2\xa0hours ago")],
)
def test_last_activity_reads_just_now_under_a_minute(seconds, text):
    from datetime import timedelta

    from django.utils import timezone

    from servers.templatetags.activity import ago

    now = timezone.now()
    assert ago(now - timedelta(seconds=seconds), now) == text


def test_home_says_just_now_for_fresh_activity(as_alice, alice):
    from django.utils import timezone

    server = running(alice)
    Server.objects.filter(pk=server.pk).update(started=timezone.now(), last_activity=timezone.now())
    content = as_alice.get("/hub/home").content.decode()
    assert "last activity just now" in content
    assert "0\xa0minutes" not in content


def test_home_shows_open_and_a_csrf_protected_stop_for_a_running_server(as_alice, alice):
    running(alice)
    content = as_alice.get("/hub/home").content
    assert b'href="/user/alice/"' in content
    assert b'action="/hub/home/stop"' in content and b"csrfmiddlewaretoken" in content


def test_home_lists_named_servers(as_alice, alice):
    running(alice, "analysis")
    ServerFactory(user=alice, name="old", state=State.FAILED, failure="boom")
    content = as_alice.get("/hub/home").content
    assert b'href="/user/alice/analysis/"' in content
    assert b"Failed: boom" in content


def test_stop_button_requests_a_stop(as_alice, alice):
    server = running(alice)
    response = as_alice.post("/hub/home/stop", {"server": ""})
    assert response["Location"] == "/hub/home"
    server.refresh_from_db()
    assert server.state == State.STOPPING
    assert server.events.filter(kind=ServerEvent.Kind.STOP_REQUESTED, actor="alice").exists()


def test_stop_without_csrf_token_is_refused(alice):
    server = running(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/hub/home/stop", {"server": ""}).status_code == 403
    server.refresh_from_db()
    assert server.state == State.RUNNING


def test_stop_by_get_is_not_allowed(as_alice, alice):
    running(alice)
    assert as_alice.get("/hub/home/stop").status_code == 405


def test_stop_only_reaches_your_own_servers(as_alice, bob):
    server = running(bob)
    as_alice.post("/hub/home/stop", {"server": ""})
    server.refresh_from_db()
    assert server.state == State.RUNNING


def test_remove_deletes_a_stopped_named_server(as_alice, alice):
    ServerFactory(user=alice, name="old")
    as_alice.post("/hub/home/remove", {"server": "old"})
    assert not alice.servers.filter(name="old").exists()


def test_remove_refuses_a_running_server(as_alice, alice):
    running(alice, "busy")
    response = as_alice.post("/hub/home/remove", {"server": "busy"})
    assert response.status_code == 400
    assert b"stop the server" in response.content


def test_new_named_server_goes_to_its_spawn_page(as_alice, small):
    response = as_alice.post("/hub/home/new", {"name": "Analysis"})
    assert response["Location"] == "/hub/spawn/alice/analysis"


def test_new_named_server_without_profiles_starts_at_once(as_alice, alice):
    response = as_alice.post("/hub/home/new", {"name": "analysis"})
    assert response["Location"] == "/hub/spawn-pending/alice/analysis"
    assert alice.servers.get(name="analysis").state == State.STARTING


@pytest.mark.parametrize("name", ["../etc", "a/b", "-x", "x" * 64, ""])
def test_new_named_server_with_bad_name_is_refused(as_alice, name):
    response = as_alice.post("/hub/home/new", {"name": name})
    assert response.status_code == 400


def test_new_named_server_refused_when_named_servers_are_off(as_alice, settings):
    settings.HUB_ALLOW_NAMED_SERVERS = False
    response = as_alice.post("/hub/home/new", {"name": "x"})
    assert response.status_code == 400
    assert b"Named servers are not enabled" in response.content


# --- spawn page -----------------------------------------------------------------


def test_spawn_page_lists_profiles_allowed_by_group(client, alice, carol, small, gpu):
    client.force_login(alice)
    assert b"GPU box" in client.get("/hub/spawn").content
    client.force_login(carol)
    content = client.get("/hub/spawn").content
    assert b"Small" in content and b"GPU box" not in content


def test_spawn_page_shows_options_with_csrf(as_alice, small):
    content = as_alice.get("/hub/spawn/alice").content
    assert b'name="profile-option-small--image"' in content
    assert b'name="profile-option-small--image--unlisted-choice"' in content
    assert b"csrfmiddlewaretoken" in content


def test_spawn_post_starts_and_redirects_to_pending(as_alice, alice, small):
    data = {"profile": "small", "profile-option-small--image": "scipy"}
    response = as_alice.post("/hub/spawn/alice", data)
    assert response["Location"] == "/hub/spawn-pending/alice"
    server = alice.servers.get(name="")
    assert server.state == State.STARTING
    assert server.profile == small
    assert server.user_options == {"profile": "small", "image": "scipy"}


def test_spawn_post_accepts_a_valid_free_text_choice(as_alice, alice, small):
    data = {"profile": "small", "profile-option-small--image--unlisted-choice": "me/img:2"}
    as_alice.post("/hub/spawn/alice", data)
    assert alice.servers.get().user_options["image--unlisted-choice"] == "me/img:2"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"profile": "small", "profile-option-small--image": "nope"}, b"is not one of"),
        (
            {"profile": "small", "profile-option-small--image--unlisted-choice": "BAD IMAGE!"},
            b"Must be an image name",
        ),
        ({"profile": "gpu"}, b"not allowed for you"),
        ({"profile": "missing"}, b"does not exist"),
        ({}, b"Choose a profile"),
    ],
)
def test_spawn_with_bad_choice_shows_a_clear_error(client, carol, small, gpu, data, message):
    client.force_login(carol)
    response = client.post("/hub/spawn", data)
    assert response.status_code == 400
    assert message in response.content
    assert not carol.servers.filter(state=State.STARTING).exists()


def test_refused_first_start_of_a_named_server_leaves_no_record(as_alice, alice, small):
    data = {"profile": "small", "profile-option-small--image": "nope"}
    assert as_alice.post("/hub/spawn/alice/extra", data).status_code == 400
    assert not alice.servers.filter(name="extra").exists()


def test_spawn_limit_is_shown_with_status_429(as_alice, settings, bob, small):
    settings.HUB_CONCURRENT_SPAWN_LIMIT = 1
    ServerFactory(user=bob, state=State.STARTING)
    response = as_alice.post("/hub/spawn", {"profile": "small"})
    assert response.status_code == 429
    assert b"Too many users" in response.content


def test_spawn_page_of_a_running_server_redirects_to_it(as_alice, alice):
    running(alice, "work")
    assert as_alice.get("/hub/spawn/alice/work")["Location"] == "/user/alice/work/"


def test_spawn_page_of_a_starting_server_redirects_to_pending(as_alice, alice):
    ServerFactory(user=alice, state=State.STARTING)
    assert as_alice.get("/hub/spawn/alice")["Location"] == "/hub/spawn-pending/alice"


def test_another_users_spawn_page_is_forbidden(as_alice, bob):
    response = as_alice.get("/hub/spawn/bob")
    assert response.status_code == 403
    assert b"Forbidden" in response.content
    assert as_alice.post("/hub/spawn/bob", {}).status_code == 403
    assert not bob.servers.exists()


def test_admin_may_start_another_users_server(client, admin, bob, small):
    client.force_login(admin)
    assert client.get("/hub/spawn/bob").status_code == 200
    client.post("/hub/spawn/bob", {"profile": "small"})
    assert bob.servers.get().events.get().actor == "admin"


def test_invalid_server_name_in_spawn_url_is_404(as_alice):
    assert as_alice.get("/hub/spawn/alice/BAD..NAME").status_code == 404


def test_named_spawn_refused_when_named_servers_are_off(as_alice, alice, settings):
    settings.HUB_ALLOW_NAMED_SERVERS = False
    response = as_alice.post("/hub/spawn/alice/extra", {})
    assert response.status_code == 400
    assert b"named servers are not enabled" in response.content


# --- spawn-pending ----------------------------------------------------------------


def test_pending_page_follows_the_progress_stream(as_alice, alice):
    ServerFactory(user=alice, state=State.STARTING)
    response = as_alice.get("/hub/spawn-pending/alice")
    assert response.status_code == 200
    assert b'data-progress-url="/hub/api/users/alice/server/progress' in response.content
    assert b'data-ready-url="/user/alice/"' in response.content
    assert b"hub/pending.js" in response.content


def test_pending_page_of_named_server_uses_its_stream(as_alice, alice):
    ServerFactory(user=alice, name="gpu1", state=State.STARTING)
    content = as_alice.get("/hub/spawn-pending/alice/gpu1").content
    assert b"/hub/api/users/alice/servers/gpu1/progress" in content


def test_pending_page_of_a_running_server_redirects_to_it(as_alice, alice):
    running(alice)
    assert as_alice.get("/hub/spawn-pending/alice")["Location"] == "/user/alice/"


def test_pending_page_keeps_a_next_inside_the_server(as_alice, alice):
    running(alice)
    ok = as_alice.get("/hub/spawn-pending/alice?next=/user/alice/lab/tree/x.ipynb")
    assert ok["Location"] == "/user/alice/lab/tree/x.ipynb"
    for bad in ["//evil.example/", "/user/bob/", "/user/alice/../bob/", "https://evil/"]:
        response = as_alice.get("/hub/spawn-pending/alice", {"next": bad})
        assert response["Location"] == "/user/alice/"


def test_pending_page_of_a_stopped_server_goes_to_spawn(as_alice, alice):
    assert as_alice.get("/hub/spawn-pending/alice")["Location"] == "/hub/spawn/alice"


def test_pending_page_shows_why_a_start_failed(as_alice, alice):
    ServerFactory(user=alice, state=State.FAILED, failure="port already in use")
    response = as_alice.get("/hub/spawn-pending/alice")
    assert b"port already in use" in response.content
    assert b"pending.js" not in response.content


def test_another_users_pending_page_is_forbidden(as_alice, bob):
    ServerFactory(user=bob, state=State.STARTING)
    assert as_alice.get("/hub/spawn-pending/bob").status_code == 403


# --- /hub/user/... (router fallback) and /hub/user-redirect ------------------------


def test_user_url_sends_anonymous_visitors_to_login(client, alice):
    response = client.get("/hub/user/alice/lab")
    assert response["Location"] == "/hub/login?next=/hub/user/alice/lab"


def test_user_url_of_stopped_server_offers_to_start(as_alice):
    response = as_alice.get("/hub/user/alice/lab/tree/a.ipynb")
    assert response.status_code == 424
    assert b"not running" in response.content
    assert b"/hub/spawn/alice?next=%2Fuser%2Falice%2Flab%2Ftree%2Fa.ipynb" in response.content


# JupyterHub 6.1.1's UserUrlHandler: a token is accepted; a request expecting
# JSON (Accept, or an `api` path segment) to a server that is not running gets
# 424 with {"message": ...}; a page request gets the spawn prompt (424) or,
# while pending or failed, a 303 to the pending page.


@pytest.mark.parametrize(
    ("accept", "json_first"),
    [
        ("application/json", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("application/json;q=0.5, text/html", False),
        ("text/html;q=0.1, application/json", True),
        ("*/*", False),
        ("", False),
        ("application/json;q=bad, text/html;q=0.5", False),
    ],
)
def test_accept_headers_rank_json_against_html_like_jupyterhub(accept, json_first):
    from servers.views import prefers_json

    assert prefers_json(accept) is json_first


def test_a_token_on_a_stopped_servers_api_url_gets_jupyterhubs_json(client, alice, token_for):
    auth = {"HTTP_AUTHORIZATION": f"token {token_for(alice)}"}
    response = client.get("/hub/user/alice/api/contents", **auth)
    assert response.status_code == 424
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "message": "JupyterHub server no longer running at /user/alice/api/contents. "
        "Restart the server at http://testserver/hub/spawn/alice"
    }


def test_a_token_asking_for_json_gets_json_on_any_path(client, alice, token_for):
    ServerFactory(user=alice, name="box")
    auth = {"HTTP_AUTHORIZATION": f"bearer {token_for(alice)}"}
    response = client.get("/hub/user/alice/box/lab", HTTP_ACCEPT="application/json", **auth)
    assert response.status_code == 424
    assert response.json()["message"].endswith(
        "Restart the server at http://testserver/hub/spawn/alice/box"
    )


def test_a_token_on_a_stopped_servers_page_gets_the_spawn_prompt(client, alice, token_for):
    auth = {"HTTP_AUTHORIZATION": f"token {token_for(alice)}"}
    response = client.get("/hub/user/alice/lab", HTTP_ACCEPT="text/html", **auth)
    assert response.status_code == 424
    assert b"not running" in response.content


def test_a_token_on_a_running_server_is_sent_back_to_it(client, alice, token_for):
    running(alice)
    auth = {"HTTP_AUTHORIZATION": f"token {token_for(alice)}"}
    response = client.get("/hub/user/alice/api/status", **auth)
    assert response["Location"] == "/user/alice/api/status?redirects=1"


def test_a_token_without_access_to_the_server_gets_404(client, alice, bob, token_for):
    auth = {"HTTP_AUTHORIZATION": f"token {token_for(bob)}"}
    assert client.get("/hub/user/alice/api/contents", **auth).status_code == 404
    limited = token_for(alice, scopes=["read:users:activity!user=alice"])
    response = client.get("/hub/user/alice/api", HTTP_AUTHORIZATION=f"token {limited}")
    assert response.status_code == 404


def test_an_invalid_token_is_sent_to_login_like_no_token(client, alice):
    response = client.get("/hub/user/alice/lab", HTTP_AUTHORIZATION="token hub_nonsense")
    assert response["Location"] == "/hub/login?next=/hub/user/alice/lab"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_get_424_json_without_login(client, alice, method):
    response = getattr(client, method)("/hub/user/alice/api/kernels")
    assert response.status_code == 424
    assert response.json()["message"].startswith(
        "JupyterHub server no longer running at /user/alice/api/kernels."
    )


def test_the_session_gets_json_for_an_api_path(as_alice):
    response = as_alice.get("/hub/user/alice/api/kernels")
    assert response.status_code == 424
    assert "no longer running" in response.json()["message"]


def test_user_url_of_a_failed_server_goes_to_pending_with_303(as_alice, alice):
    ServerFactory(user=alice, state=State.FAILED, failure="boom")
    response = as_alice.get("/hub/user/alice/lab")
    assert response.status_code == 303
    assert response["Location"] == "/hub/spawn-pending/alice?next=%2Fuser%2Falice%2Flab"


def test_user_url_of_starting_server_goes_to_pending(as_alice, alice):
    ServerFactory(user=alice, state=State.STARTING)
    response = as_alice.get("/hub/user/alice/lab")
    assert response["Location"] == "/hub/spawn-pending/alice?next=%2Fuser%2Falice%2Flab"


def test_user_url_of_running_server_bounces_back_once(as_alice, alice):
    running(alice)
    response = as_alice.get("/hub/user/alice/lab?x=1")
    assert response.status_code == 302
    assert response["Location"] == "/user/alice/lab?x=1&redirects=1"


def test_user_url_second_bounce_shows_an_error_instead_of_looping(as_alice, alice):
    running(alice)
    response = as_alice.get("/hub/user/alice/lab?redirects=1")
    assert response.status_code == 503
    assert b"no route" in response.content


def test_user_url_picks_the_named_server_by_its_segment(as_alice, alice):
    running(alice, "gpu1")
    assert as_alice.get("/hub/user/alice/gpu1/lab").status_code == 302
    # the default server is not running, and "lab" is not a named server
    assert as_alice.get("/hub/user/alice/lab").status_code == 424


def test_user_url_of_another_users_server_is_forbidden(as_alice, bob):
    running(bob)
    assert as_alice.get("/hub/user/bob/lab").status_code == 403


def test_user_url_of_another_users_server_is_allowed_for_admin(client, admin, bob):
    running(bob)
    client.force_login(admin)
    assert client.get("/hub/user/bob/lab")["Location"] == "/user/bob/lab?redirects=1"


def test_user_url_of_unknown_user_is_404_for_admin(client, admin):
    client.force_login(admin)
    assert client.get("/hub/user/nobody/").status_code == 404


def test_user_redirect_goes_to_my_server(as_alice):
    response = as_alice.get("/hub/user-redirect/lab/tree/x.ipynb?kernel=py")
    assert response["Location"] == "/user/alice/lab/tree/x.ipynb?kernel=py"


@pytest.mark.parametrize("path", ["../bob/lab", "lab/../../bob", "a\\b"])
def test_user_redirect_refuses_path_tricks(as_alice, path):
    assert as_alice.get(f"/hub/user-redirect/{path}").status_code == 400


# --- Django admin (servers) -----------------------------------------------------


@pytest.fixture
def staff(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_admin_stop_action_requests_a_stop(staff, alice):
    server = running(alice)
    staff.post("/hub/admin/servers/server/", {"action": "stop", "_selected_action": [server.pk]})
    server.refresh_from_db()
    assert server.state == State.STOPPING


def test_admin_start_action_requests_a_start_with_the_last_profile(staff, alice, small):
    server = ServerFactory(user=alice, profile=small, user_options={"image": "scipy"})
    staff.post("/hub/admin/servers/server/", {"action": "start", "_selected_action": [server.pk]})
    server.refresh_from_db()
    assert server.state == State.STARTING
    assert server.user_options == {"image": "scipy", "profile": "small"}


def test_admin_server_page_shows_state_open_link_and_recent_events(staff, alice):
    server = running(alice)
    ServerEvent.objects.create(server=server, kind="progress", progress=40, message="pulling <img>")
    content = staff.get(f"/hub/admin/servers/server/{server.pk}/change/").content
    assert b'href="/user/alice/"' in content
    assert b"pulling &lt;img&gt;" in content


def test_admin_server_list_filters_by_state(staff, alice, bob):
    running(alice)
    ServerFactory(user=bob)
    content = staff.get("/hub/admin/servers/server/?state__exact=running").content
    assert b"alice/" in content and b"bob/" not in content


def test_admin_events_are_read_only(staff, alice):
    event = ServerEvent.objects.create(server=running(alice), kind="progress")
    assert staff.get("/hub/admin/servers/serverevent/").status_code == 200
    url = f"/hub/admin/servers/serverevent/{event.pk}/delete/"
    assert staff.post(url, {"post": "yes"}).status_code == 403


def test_admin_profile_pages_render(staff, gpu):
    assert staff.get("/hub/admin/servers/profile/").status_code == 200
    assert staff.get(f"/hub/admin/servers/profile/{gpu.pk}/change/").status_code == 200
    assert staff.get("/hub/admin/servers/profile/add/").status_code == 200


def test_a_token_on_a_starting_servers_api_gets_424_json_and_a_running_named_one_a_bounce(
    client, alice, token_for
):
    ServerFactory(user=alice, state=Server.State.STARTING)
    running(alice, "box")
    auth = {"HTTP_AUTHORIZATION": f"token {token_for(alice)}"}
    pending = client.get("/hub/user/alice/api/status", **auth)
    assert pending.status_code == 424
    assert pending.json()["message"].endswith(
        "Restart the server at http://testserver/hub/spawn/alice"
    )
    bounced = client.get("/hub/user/alice/box/api/status", **auth)
    assert bounced["Location"] == "/user/alice/box/api/status?redirects=1"


def test_a_token_for_a_user_that_does_not_exist_gets_404(client, alice, token_for):
    admin = UserFactory(username="root", is_superuser=True)
    auth = {"HTTP_AUTHORIZATION": f"token {token_for(admin)}"}
    assert client.get("/hub/user/nobody/api/status", **auth).status_code == 404
