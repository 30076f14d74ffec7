"""hubsite/gunicorn_conf.py: where the hub listens comes from HUB_BIND_URL,
and the access log leaves out the router's successful route polls."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from hubsite import gunicorn_conf


@pytest.mark.parametrize(
    ("url", "bind"),
    [
        ("http://127.0.0.1:8081", "127.0.0.1:8081"),
        ("http://0.0.0.0:9000/", "0.0.0.0:9000"),
        ("http://[::1]:8081", "[::1]:8081"),
        ("http://hub:80", "hub:80"),
    ],
)
def test_the_bind_address_is_host_and_port_of_hub_bind_url(url, bind):
    assert gunicorn_conf.bind_address(url) == bind


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8081", "https://127.0.0.1:8081", "http://127.0.0.1", "http://h:x", "http://h:1/p"],
)
def test_a_bind_url_that_is_not_http_host_port_is_refused_by_name(url):
    with pytest.raises(ImproperlyConfigured, match="HUB_BIND_URL must be http://HOST:PORT"):
        gunicorn_conf.bind_address(url)


@pytest.mark.parametrize(
    ("path", "status", "debug", "quiet"),
    [
        ("/hub/api/routes", 200, False, True),
        ("/hub/api/routes/alice", 304, False, True),
        ("/hub/api/routes", 200, True, False),
        ("/hub/api/routes", 401, False, False),
        ("/hub/api/routes", 500, False, False),
        ("/hub/api/routes/lookup", 404, False, True),
        ("/hub/api/routes/lookup", 404, True, False),
        ("/hub/api/routes/lookup", 403, False, False),
        ("/hub/api/routes", 404, False, False),
        ("/hub/api/users", 200, False, False),
        ("/hub/home", 200, False, False),
    ],
)
def test_route_polls_and_lookup_misses_leave_the_access_log_below_debug(path, status, debug, quiet):
    assert gunicorn_conf.is_quiet_request(path, status, debug=debug) is quiet
