"""Which server a /user/<name>/<rest> path addresses, and its state, in one
query: the question the hub answers every time the router has no route for
a path, i.e. every poll of a server that is still starting (a script or
bench/spawn.py polling `/user/<name>/api` every 50 ms, a frontend polling
its API). Through the ORM it took three queries and most of the hub's CPU of
a start (building the same SQL each time costs several times what SQLite or
PostgreSQL spend answering it), so it is plain SQL, like the users API's hot
reads (accounts/api/serializers.py)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from accounts.models import User
from servers.models import Server


@dataclass(frozen=True)
class Addressed:
    user_id: int
    server_name: str  # the named server when one by the path's first segment exists
    state: str  # a Server.State value; stopped when the server has no row yet


def addressed_server(username: str, rest: str) -> Addressed | None:
    """The server /user/USERNAME/REST belongs to (servers.views._server_for_path
    says the same with model instances), or None when there is no such user."""
    first = rest.split("/", 1)[0] if settings.HUB_ALLOW_NAMED_SERVERS else ""
    quote = connection.ops.quote_name
    sql = (
        f"SELECT u.id, s.name, s.state FROM {quote(User._meta.db_table)} u "
        f"LEFT JOIN {quote(Server._meta.db_table)} s ON s.user_id = u.id AND s.name IN (%s, %s) "
        "WHERE u.username = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [first, "", username])
        rows = cursor.fetchall()
    if not rows:
        return None
    states = {name: state for _, name, state in rows if name is not None}
    name = first if first and first in states else ""
    return Addressed(rows[0][0], name, states.get(name, Server.State.STOPPED))
