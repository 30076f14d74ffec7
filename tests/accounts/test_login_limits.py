"""Sign-in limits count the real client and the account, never everybody.

regression: #8 (finding 2): behind the router every request came from its
address, so one client's 30 failed logins refused everyone's password."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

FLOODER = "198.51.100.66"
TOO_MANY = b"Too many failed login attempts"


def via_router(client_ip: str) -> Client:
    """A browser at CLIENT_IP, reaching the hub through the router on loopback."""
    return Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=client_ip)


def log_in(client: Client, username: str, password: str = PASSWORD):
    return client.post("/hub/login", {"login": username, "password": password})


def refused(response) -> bool:
    """Refused for the limit: the form's "too many" error, or allauth's 429 page
    once the client has also used up its login requests for the minute."""
    return response.status_code == 429 or (
        response.status_code == 200 and TOO_MANY in response.content
    )


def flood(client: Client, count: int = 30) -> None:
    for n in range(count):
        log_in(client, f"nobody{n}", "wrong")


def test_a_flood_from_one_client_leaves_other_clients_logging_in(fresh_limits, alice, bob):
    flood(via_router(FLOODER))
    for n, user in enumerate([alice, bob]):
        response = log_in(via_router(f"203.0.113.{n + 1}"), user.username)
        assert response.status_code == 302, response.content
        assert response["Location"] == "/hub/home"


def test_the_flooding_client_is_refused_even_with_a_right_password(fresh_limits, alice):
    flood(via_router(FLOODER))
    assert refused(log_in(via_router(FLOODER), "alice"))


def test_an_account_attacked_from_many_clients_is_locked(fresh_limits, settings, alice, bob):
    for n in range(settings.HUB_LOGIN_FAILURES_PER_ACCOUNT):
        log_in(via_router(f"192.0.2.{n + 1}"), "alice", "wrong")
    assert refused(log_in(via_router("203.0.113.50"), "alice"))
    # the lock is the account's: bob, from the same client, is let in
    assert log_in(via_router("203.0.113.50"), "bob").status_code == 302


def test_the_lock_is_per_person_whatever_the_case_of_the_name(fresh_limits, settings, alice):
    for n in range(settings.HUB_LOGIN_FAILURES_PER_ACCOUNT):
        log_in(via_router(f"192.0.2.{n + 1}"), "ALICE" if n % 2 else "Alice", "wrong")
    assert refused(log_in(via_router("203.0.113.51"), "alice"))


def test_forwarded_for_from_an_untrusted_peer_does_not_change_the_client(fresh_limits, alice):
    # straight to the hub, not through the router: X-Forwarded-For is the client's own words
    for n in range(30):
        spoofer = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        log_in(spoofer, f"nobody{n}", "wrong")
    again = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert refused(log_in(again, "alice"))
    assert log_in(via_router("203.0.113.10"), "alice").status_code == 302


def test_another_host_header_is_not_a_fresh_set_of_tries(fresh_limits, settings, alice):
    for n in range(settings.HUB_LOGIN_FAILURES_PER_ACCOUNT):
        client = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}")
        client.post("/hub/login", {"login": "alice", "password": "no"}, HTTP_HOST=f"h{n}.example")
    assert refused(log_in(via_router("203.0.113.52"), "alice"))
