"""The hub's cookies stay on /hub/, and session-cookie API calls take the XSRF
token where JupyterHub's own front-end sends it.
regression: issue 8 finding 9."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_flash_message_sets_no_cookie_outside_the_hub(client, alice):
    response = client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    # allauth flashes "Successfully signed in"; it must not travel as a Path=/ cookie
    assert "messages" not in response.cookies
    assert all(c["path"] == "/hub/" for c in response.cookies.values())
    # the message still reaches the next page: through the session
    page = client.get(response["Location"])
    stored = [str(m) for m in messages.get_messages(page.wsgi_request)]
    assert stored == ["Successfully signed in as alice."]


def xsrf_client(alice) -> tuple[APIClient, str]:
    """A browser-like client holding alice's session and the hub's XSRF cookie."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    Client.get(client, "/hub/token")  # a page render sets the _xsrf_hub cookie
    return client, client.cookies["_xsrf_hub"].value


@pytest.mark.parametrize(
    "how",
    ["X-XSRFToken header", "_xsrf argument", "X-CSRFToken header"],
)
def test_session_api_call_accepts_jupyterhub_xsrf_forms(alice, how):
    client, token = xsrf_client(alice)
    url, extra = "/hub/api/users/alice/tokens", {}
    if how == "X-XSRFToken header":
        extra["HTTP_X_XSRFTOKEN"] = token
    elif how == "X-CSRFToken header":
        extra["HTTP_X_CSRFTOKEN"] = token
    else:
        url += f"?_xsrf={token}"
    response = client.post(url, {"note": how}, format="json", **extra)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("token", ["", "wrong" * 8])
def test_session_api_call_with_missing_or_wrong_xsrf_is_refused(alice, token):
    client, _ = xsrf_client(alice)
    response = client.post("/hub/api/users/alice/tokens", {}, format="json", HTTP_X_XSRFTOKEN=token)
    assert response.status_code == 403
    assert "XSRF" in response.json()["message"]
