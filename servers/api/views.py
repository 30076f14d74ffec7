"""JupyterHub-compatible server endpoints: start, stop, read, create, modify,
and the progress event stream.

Starting and stopping only claim a state transition (servers.services) and
return: the Celery worker does the work, so these answer 202 while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import HubAPIView, find_user, user_groups
from accounts.api.errors import Conflict
from accounts.models import User
from servers import hosts, services
from servers.api import progress
from servers.api.serializers import server_model, server_row, server_url
from servers.models import Server

State = Server.State


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
    """The spawn progress as server-sent events, read from ServerEvent rows
    (servers.api.progress: polled on this thread under gunicorn, fed without
    one on the stream server)."""

    def get(self, request: Request, name: str, server_name: str = "") -> StreamingHttpResponse:
        allowed = self.access.on_server("read:servers", name, server_name, user_groups(name))
        self.access.require(allowed, "read:servers")
        server = _find_server(find_user(name), server_name)
        url = hosts.browser_url(name, server_url(name, server_name))
        fed = isinstance(request._request, ASGIRequest)  # the stream server: no thread held
        if server.state == State.RUNNING:
            stream = progress.once(progress.ready_event(url), fed=fed)
        elif server.state == State.FAILED:
            stream = progress.once(progress.failed_event(server.failure), fed=fed)
        elif server.state != State.STARTING:
            raise exceptions.ParseError(f"{name}/{server_name} is not starting")
        elif fed:
            stream = progress.fed_events(server.pk, url, progress.first_event_id(server.pk))
        else:
            stream = progress.polled_events(server.pk, url)
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
