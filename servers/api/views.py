"""JupyterHub-compatible server endpoints: start, stop, read, create, modify,
and the progress event stream.

Starting and stopping only claim a state transition (servers.services) and
return: the Celery worker does the work, so these answer 202 while it runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import HubAPIView, find_user, user_groups
from accounts.api.errors import Conflict
from accounts.models import User
from servers import hosts, services
from servers.api.serializers import server_model, server_row, server_url
from servers.models import Server, ServerEvent

State = Server.State
POLL_INTERVAL = 0.2
KEEPALIVE_EVERY = 8.0


class StartRefusedError(exceptions.APIException):
    def __init__(self, refused: services.StartRefused) -> None:
        super().__init__(str(refused))
        self.status_code = refused.status


class ServerView(HubAPIView):
    """`/users/{name}/server` and `/users/{name}/servers/{server_name}`."""

    def get(self, request: Request, name: str, server_name: str = "") -> Response:
        self._require("read:servers", name, server_name)
        server = _find_server(find_user(name), server_name)
        with_state = self.access.on_server(
            "admin:server_state", name, server_name, user_groups(name)
        )
        return Response(server_model(name, server_row(server), with_state=with_state))

    def post(self, request: Request, name: str, server_name: str = "") -> Response:
        """Start: 202 while the start runs (or was already pending), 201 if it
        finished at once; 400 if already running or stopping (JupyterHub 6.1.1)."""
        self._require("start:servers", name, server_name)
        user = find_user(name)
        _check_name(server_name)
        options, display_name = _server_request(self.json_body(default=None))
        with _refusals():
            server = services.start_server(
                user,
                server_name,
                by=self.identity.name,
                user_options=options,
                display_name=display_name,
            )
        return _empty(201 if server.state == State.RUNNING else 202)

    def delete(self, request: Request, name: str, server_name: str = "") -> Response:
        """Stop: 202 while stopping, 204 once stopped; `{"remove": true}` deletes
        a named server after it has stopped."""
        self._require("delete:servers", name, server_name)
        user = find_user(name)
        remove = self.json_dict().get("remove", False)
        if not isinstance(remove, bool):
            raise exceptions.ParseError("remove must be true or false")
        if not server_name and remove:
            raise exceptions.ParseError("Cannot delete the default server")
        server = Server.objects.filter(user=user, name=server_name).first()
        if server is None:
            if server_name:
                raise exceptions.NotFound(f"{name} has no server named {server_name}")
            return _empty(204)
        done = services.stop_or_remove(server, by=self.identity.name, remove=remove)
        return _empty(204 if done else 202)

    def put(self, request: Request, name: str, server_name: str = "") -> Response:
        """Create a named server without starting it (JupyterHub 6)."""
        self._require("start:servers", name, server_name)
        user = find_user(name)
        _check_name(server_name)
        options, display_name = _server_request(self.json_body(default=None))
        with _refusals():
            server = services.create_named_server(
                user, server_name, display_name=display_name or "", user_options=options
            )
        return Response(_model(self, user, server), status=201)

    def patch(self, request: Request, name: str, server_name: str = "") -> Response:
        """Rename or change a stopped server (JupyterHub 6)."""
        self._require("start:servers", name, server_name)
        user = find_user(name)
        server = _find_server(user, server_name)
        body = self.json_dict()
        if not set(body) & {"name", "display_name", "user_options"}:
            raise exceptions.ParseError("Specify name, display_name or user_options")
        options, display_name = _server_request(
            {k: v for k, v in body.items() if k in ("user_options", "display_name")}
        )
        new_name = body.get("name")
        if new_name is not None and not isinstance(new_name, str):
            raise exceptions.ParseError("name must be a string")
        with _refusals():
            services.modify_server(
                server, name=new_name, display_name=display_name, user_options=options
            )
        return Response(_model(self, user, server))

    def _require(self, scope: str, name: str, server_name: str) -> None:
        allowed = self.access.on_server(scope, name, server_name, user_groups(name))
        self.access.require(allowed, scope)


class ProgressView(HubAPIView):
    """The spawn progress as server-sent events, read from ServerEvent rows."""

    def get(self, request: Request, name: str, server_name: str = "") -> StreamingHttpResponse:
        allowed = self.access.on_server("read:servers", name, server_name, user_groups(name))
        self.access.require(allowed, "read:servers")
        server = _find_server(find_user(name), server_name)
        url = hosts.browser_url(name, server_url(name, server_name))
        if server.state == State.RUNNING:
            stream: Iterator[str] = iter([_sse(_ready_event(url))])
        elif server.state == State.FAILED:
            stream = iter([_sse(_failed_event(server.failure))])
        elif server.state == State.STARTING:
            stream = _progress_stream(server.pk, url)
        else:
            raise exceptions.ParseError(f"{name}/{server_name} is not starting")
        response = StreamingHttpResponse(stream, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


# --- helpers ------------------------------------------------------------------


def _empty(status: int) -> Response:
    return Response(status=status, content_type="text/plain")


def _check_name(server_name: str) -> None:
    with _refusals():
        services.check_server_name(server_name)


@contextmanager
def _refusals() -> Iterator[None]:
    """servers.services' refusals as JupyterHub's status codes."""
    try:
        yield
    except services.StartRefused as refused:
        raise StartRefusedError(refused) from None
    except services.ServerExists as exc:
        raise Conflict(str(exc)) from None


def _find_server(user: User, server_name: str) -> Server:
    server = Server.objects.filter(user=user, name=server_name).first()
    if server is None:
        raise exceptions.NotFound(f"{user.username} has no server named {server_name!r}")
    return server


def _server_request(body: Any) -> tuple[dict[str, Any] | None, str | None]:
    """JupyterHub 6's ServerRequest: `{user_options, display_name}`, or, for
    older clients, the whole body as user_options. None = reuse the last."""
    if body is None:
        return None, None
    if not isinstance(body, dict):
        raise exceptions.ParseError("Body must be a JSON dict or empty")
    if "user_options" in body or "display_name" in body:
        options, display_name = body.get("user_options"), body.get("display_name")
    else:
        options, display_name = body, None
    if options is not None and not isinstance(options, dict):
        raise exceptions.ParseError("user_options must be a JSON dict")
    if display_name is not None and (not isinstance(display_name, str) or len(display_name) > 255):
        raise exceptions.ParseError("display_name must be a string of at most 255 characters")
    return options, display_name


def _model(view: HubAPIView, user: User, server: Server) -> dict[str, Any]:
    with_state = view.access.on_server(
        "admin:server_state", user.username, server.name, user_groups(user.username)
    )
    return server_model(user.username, server_row(server), with_state=with_state)


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def _ready_event(url: str) -> dict[str, Any]:
    return {
        "progress": 100,
        "ready": True,
        "message": f"Server ready at {url}",
        "html_message": f'Server ready at <a href="{url}">{url}</a>',
        "url": url,
    }


def _failed_event(reason: str) -> dict[str, Any]:
    message = f"Spawn failed: {reason}" if reason else "Spawn failed"
    return {"progress": 100, "failed": True, "message": message}


def _progress_stream(server_id: int, url: str) -> Iterator[str]:
    """Events of the current start, from its start request on, until the
    server is ready, failed or stopped; a comment line keeps proxies open."""
    Kind = ServerEvent.Kind
    events = ServerEvent.objects.filter(server_id=server_id)
    start = events.filter(kind=Kind.START_REQUESTED).order_by("-id").values_list("id", flat=True)
    last_id = (start.first() or 1) - 1
    deadline = time.monotonic() + settings.HUB_START_TIMEOUT + 60
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        rows = list(
            events.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "kind", "progress", "message")
        )
        for event_id, kind, progress, message in rows:
            last_id = event_id
            if kind in (Kind.START_REQUESTED, Kind.PROGRESS):
                yield _sse({"progress": progress, "message": message})
            elif kind == Kind.READY:
                yield _sse(_ready_event(url))
                return
            elif kind == Kind.FAILED:
                yield _sse(_failed_event(message))
                return
            else:  # stop requested or stopped while starting
                yield _sse(_failed_event("the server was stopped while starting"))
                return
        if rows:
            quiet_since = time.monotonic()
        elif not Server.objects.filter(pk=server_id).exists():
            yield _sse(_failed_event("the server was removed"))
            return
        elif time.monotonic() - quiet_since > KEEPALIVE_EVERY:
            quiet_since = time.monotonic()
            yield ":\n\n"
        time.sleep(POLL_INTERVAL)
    yield _sse(_failed_event("timed out waiting for progress"))
