"""How `make run` serves the hub: gunicorn's settings (`--config
python:hubsite.gunicorn_conf`), with the address taken from HUB_BIND_URL, the
one variable that says where the hub listens (the router and the README read
the same one).

The access log leaves out the router's successful route polls (`GET
/hub/api/routes...`, one a second per router worker: most of the log) and its
lookups that find no route (a 404 from `/hub/api/routes/lookup`: the request
that missed comes to the hub next and is logged itself) unless HUB_LOG_LEVEL is
DEBUG; failed polls are still logged."""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger

from hubsite.env import bind_address, env_str

ROUTE_POLL_PREFIX = "/hub/api/routes"
ROUTE_LOOKUP = "/hub/api/routes/lookup"


def is_quiet_request(path: str, status: int | None, *, debug: bool) -> bool:
    """A request the access log skips below DEBUG: a successful route poll, or
    a lookup that found no route."""
    if debug or status is None or not path.startswith(ROUTE_POLL_PREFIX):
        return False
    return status < 400 or (status == 404 and path == ROUTE_LOOKUP)


class HubLogger(Logger):
    def access(self, resp, req, environ, request_time) -> None:
        debug = self.error_log.isEnabledFor(logging.DEBUG)
        if is_quiet_request(environ.get("PATH_INFO", ""), resp.status_code, debug=debug):
            return
        super().access(resp, req, environ, request_time)


bind = [bind_address(env_str("HUB_BIND_URL", "http://127.0.0.1:8081").rstrip("/"), "HUB_BIND_URL")]
worker_class = "gthread"
workers = 2
threads = 16
timeout = 0
graceful_timeout = 5
accesslog = "-"
loglevel = env_str("HUB_LOG_LEVEL", "INFO").lower()
logger_class = HubLogger
wsgi_app = "hubsite.wsgi"
