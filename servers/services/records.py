"""Server rows: finding or creating one to start, named servers created
without a start, renamed or changed while stopped, and removed once stopped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.validators import validate_server_name
from servers.models import Server, ServerEvent
from servers.services.claims import named_server_allowed, request_start, request_stop
from servers.services.errors import ServerExists, StartRefused
from servers.services.reconcile import check_alive

State = Server.State


def get_or_create_server(user: User, name: str) -> Server:
    server, _ = Server.objects.get_or_create(user=user, name=name)
    return server


def start_server(
    user: User,
    name: str,
    *,
    by: str,
    user_options: Mapping[str, Any] | None = None,
    display_name: str | None = None,
) -> Server:
    """Find or create USER's server NAME and request its start. USER_OPTIONS
    None reuses the last start's. A server already running or stopping is
    refused (StartRefused, 400); one starting is left to its start (the API's
    202). A refused first start of a named server leaves no empty named
    server behind."""
    server, created = Server.objects.get_or_create(user=user, name=name)
    server.user = user  # the checks of request_start read it: not fetched again
    try:
        if server.state == State.RUNNING:
            # JupyterHub 6.1.1 answers 400; a server whose process died is failed
            # by check_alive and started again below, as JupyterHub's poll does
            if check_alive(server):
                raise StartRefused(f"{server.log_name} is already running", 400)
            server.refresh_from_db()
        if server.state == State.STOPPING:
            raise StartRefused(f"{server.log_name} is pending stop", 400)
        if display_name is not None:
            set_display_name(server, display_name)
        options = server.user_options or {} if user_options is None else user_options
        claimed = request_start(server, by=by, user_options=options)
    except StartRefused:
        if created and name:
            server.delete()
        raise
    if not claimed:  # already pending or running: its state now, for the API's answer
        server.refresh_from_db(fields=["state"])
    return server


def set_display_name(server: Server, display_name: str) -> None:
    Server.objects.filter(pk=server.pk).update(display_name=display_name)
    server.display_name = display_name


def create_named_server(
    user: User, name: str, *, display_name: str = "", user_options: Mapping[str, Any] | None = None
) -> Server:
    """A named server that exists without running (JupyterHub 6's PUT)."""
    if not name:
        raise StartRefused("The default server always exists", 400)
    named_server_allowed(user, name)
    try:
        with transaction.atomic():
            return Server.objects.create(
                user=user,
                name=name,
                display_name=display_name,
                user_options=dict(user_options or {}),
            )
    except IntegrityError:
        raise ServerExists(f"{user.username} already has a server named {name}") from None


def modify_server(
    server: Server,
    *,
    name: str | None = None,
    display_name: str | None = None,
    user_options: Mapping[str, Any] | None = None,
) -> None:
    """Rename or change a stopped server (JupyterHub 6's PATCH); None keeps a field."""
    if server.state not in (State.STOPPED, State.FAILED):
        raise StartRefused(f"Stop {server.user.username}/{server.name} before modifying it", 400)
    new_name = server.name if name is None else name
    if (server.name == "") != (new_name == ""):
        raise StartRefused("The default server cannot be renamed", 400)
    check_server_name(new_name)
    server.name = new_name
    if display_name is not None:
        server.display_name = display_name
    if user_options is not None:
        server.user_options = dict(user_options)
    try:
        with transaction.atomic():
            server.save(update_fields=["name", "display_name", "user_options"])
    except IntegrityError:
        owner = server.user.username
        raise ServerExists(f"{owner} already has a server named {new_name}") from None


def check_server_name(name: str) -> None:
    try:
        validate_server_name(name)
    except ValidationError as exc:
        raise StartRefused(f"Invalid server name {name!r}: {exc.messages[0]}", 400) from None


def stop_or_remove(server: Server, *, by: str, remove: bool = False) -> bool:
    """Request a stop (and, for a named server, its removal once stopped).
    True when nothing is left to wait for (stopped, or removed), False while
    the stop runs: the API's 204 and 202."""
    if request_stop(server, by=by, remove=remove):
        return False
    server.refresh_from_db(fields=["state"])
    if server.state == State.STOPPING:
        return remove and remove_when_stopped(server, by=by)
    if remove:
        remove_if_stopped(server)
    return True


def remove_when_stopped(server: Server, *, by: str) -> bool:
    """Ask that a named server already stopping be removed once stopped;
    removes it now if it has stopped meanwhile. True if it is gone already."""
    Server.objects.filter(pk=server.pk).exclude(name="").update(remove_on_stop=True)
    ServerEvent.objects.create(
        server=server, kind=ServerEvent.Kind.STOP_REQUESTED, message="Removal requested", actor=by
    )
    return remove_if_stopped(server)


def remove_if_stopped(server: Server) -> bool:
    """Delete a named server's row if it is stopped; True if it is gone."""
    deleted, _ = (
        Server.objects.filter(pk=server.pk, state__in=[State.STOPPED, State.FAILED])
        .exclude(name="")
        .delete()
    )
    return bool(deleted)


def delete_server(server: Server) -> None:
    """Remove a named server's record; it must be stopped first."""
    if server.state not in (State.STOPPED, State.FAILED):
        raise StartRefused("stop the server before removing it", 400)
    server.delete()
