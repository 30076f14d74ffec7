"""Inputs that used to crash the API with an HTML 500 (or were accepted when
they should not be) get a JSON 4xx saying what is allowed.
regression: issue 8 findings 6 (activity in year 9999) and 7."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api import errors, inputs
from servers.models import Server
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(admin, token_for) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"token {token_for(admin)}")
    return client


@pytest.fixture
def router_api(settings) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"token {settings.HUB_ROUTER_TOKEN}")
    return client


def assert_json_error(response, status: int, says: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] == status
    assert says in response.json()["message"]


@pytest.mark.parametrize("expires_in", [1e308, -1, 10**30, "60", True])
def test_token_expiry_out_of_bounds_is_a_400(admin_api, alice, expires_in):
    response = admin_api.post("/hub/api/users/alice/tokens", {"expires_in": expires_in}, "json")
    assert_json_error(response, 400, "expires_in must be a number of seconds from 0 to")


def test_token_expiry_within_bounds_is_kept(admin_api, alice):
    response = admin_api.post("/hub/api/users/alice/tokens", {"expires_in": 3600}, "json")
    assert response.status_code == 201
    assert response.json()["expires_at"] is not None


def test_json_nested_50000_deep_is_a_400(admin_api, alice):
    body = "[" * 50_000 + "]" * 50_000
    response = admin_api.post(
        "/hub/api/users/alice/tokens", data=body, content_type="application/json"
    )
    assert_json_error(response, 400, "nested too deeply")


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (f"offset={10**30}", "offset must be an integer from 0 to 1000000000"),
        ("offset=-3", "offset must be an integer from 0"),
        ("limit=-5", "limit must be an integer from 0 to 200"),
        ("limit=ten", "limit must be an integer from 0 to 200"),
    ],
)
def test_page_bounds_out_of_range_are_a_400(admin_api, query, says):
    assert_json_error(admin_api.get(f"/hub/api/users?{query}"), 400, says)


@pytest.mark.parametrize(
    ("query", "bounds"),
    [("", (0, 50)), ("limit=0", (0, 1)), (f"limit={10**30}", (0, 200)), ("offset=7", (7, 50))],
)
def test_page_limit_is_clamped_like_jupyterhub(query, bounds):
    params = dict(p.split("=") for p in query.split("&") if p)
    assert inputs.page_bounds(params, paginated=True) == bounds


def test_huge_limit_returns_at_most_200_users(admin_api):
    response = admin_api.get(
        f"/hub/api/users?limit={10**30}", HTTP_ACCEPT="application/jupyterhub-pagination+json"
    )
    assert response.json()["_pagination"]["limit"] == 200


def test_route_changes_since_an_impossible_version_is_a_400(router_api):
    response = router_api.get("/hub/api/routes?since=99999999999999999999-1")
    assert_json_error(response, 400, "not a route table version")


@pytest.mark.parametrize("stamp", ["2024-01-01T10:99:00Z", "2024-13-01T00:00:00Z", "yesterday"])
def test_impossible_activity_time_is_a_400(admin_api, alice, stamp):
    response = admin_api.post("/hub/api/users/alice/activity", {"last_activity": stamp}, "json")
    assert_json_error(response, 400, "last_activity must be an ISO 8601 time")


def test_activity_more_than_an_hour_ahead_is_refused(admin_api, alice):
    server = ServerFactory(user=alice, state=Server.State.RUNNING)
    body = {"servers": {"": {"last_activity": "9999-01-01T10:00:00Z"}}}
    response = admin_api.post("/hub/api/users/alice/activity", body, "json")
    assert_json_error(response, 400, "more than an hour in the future")
    server.refresh_from_db()
    assert server.last_activity is None or server.last_activity.year < 9999


def test_activity_a_few_minutes_ahead_is_accepted(admin_api, alice):
    ahead = (timezone.now() + timedelta(minutes=5)).isoformat()
    response = admin_api.post("/hub/api/users/alice/activity", {"last_activity": ahead}, "json")
    assert response.status_code == 200


def test_too_long_name_list_is_a_400(admin_api):
    body = {"usernames": [f"u{i}" for i in range(1001)]}
    assert_json_error(admin_api.post("/hub/api/users", body, "json"), 400, "at most 1000")


def test_unknown_api_path_is_a_json_404(admin_api):
    assert_json_error(admin_api.get("/hub/api/no/such/thing"), 404, "No such API endpoint")


def test_wrong_method_is_a_json_405(admin_api):
    assert_json_error(admin_api.delete("/hub/api/info"), 405, "not allowed")


def test_a_crash_under_the_api_is_a_json_500():
    response = errors.server_error(RequestFactory().get("/hub/api/users"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"


def test_pages_keep_their_html_404(client):
    response = client.get("/hub/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_nul_character_in_a_json_string_is_a_400_not_a_database_error(admin_api):
    # found by schemathesis on PostgreSQL, which cannot store or compare a NUL
    response = admin_api.post("/hub/api/users", {"usernames": ["al\u0000ice"]}, "json")
    assert response.status_code == 400
    assert "NUL" in response.json()["message"]
