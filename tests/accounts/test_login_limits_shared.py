"""A lockout is one fact for every hub process, and outlives them: the
counters are in the database (or Redis), not in a process's memory."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

TOO_MANY = "Too many failed login attempts"


def log_in(hub_url: str, username: str, password: str, *, client_ip: str) -> requests.Response:
    """The login form as a browser at CLIENT_IP posts it, through a router on loopback."""
    session = requests.Session()
    session.headers["X-Forwarded-For"] = client_ip
    page = session.get(hub_url + "/hub/login", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    form = {"csrfmiddlewaretoken": csrf, "login": username, "password": password}
    return session.post(hub_url + "/hub/login", data=form, allow_redirects=False, timeout=30)


def test_a_lockout_made_on_one_hub_holds_on_another_and_after_a_restart(
    fresh_limits, launched_hubs, settings, alice
):
    first, second = launched_hubs(), launched_hubs()
    assert log_in(second.url, "alice", PASSWORD, client_ip="203.0.113.1").status_code == 302
    for n in range(settings.HUB_LOGIN_FAILURES_PER_ACCOUNT):
        wrong = log_in(first.url, "alice", "wrong", client_ip=f"192.0.2.{n + 1}")
        assert wrong.status_code == 200 and TOO_MANY not in wrong.text
    locked = log_in(second.url, "alice", PASSWORD, client_ip="203.0.113.2")
    assert locked.status_code == 200 and TOO_MANY in locked.text
    first.stop()
    second.stop()
    restarted = launched_hubs()
    still = log_in(restarted.url, "alice", PASSWORD, client_ip="203.0.113.3")
    assert still.status_code == 200 and TOO_MANY in still.text


def test_a_flood_through_one_hub_leaves_other_clients_logging_in_on_another(
    fresh_limits, launched_hubs, alice
):
    first, second = launched_hubs(), launched_hubs()
    for n in range(30):
        log_in(first.url, f"nobody{n}", "wrong", client_ip="198.51.100.66")
    assert log_in(second.url, "alice", PASSWORD, client_ip="203.0.113.4").status_code == 302
    flooder = log_in(second.url, "alice", PASSWORD, client_ip="198.51.100.66")
    assert flooder.status_code in (200, 429) and "Location" not in flooder.headers
