"""Claims bring the server object up to date themselves: a start or stop
does not read the row it just wrote (each read is ORM work on the hub or the
worker for every start and stop), and what the object says afterwards is
what the database holds."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hubsite.processes import identity
from servers import services
from servers.models import Server
from servers.services import leases
from tests.factories import ServerFactory

State = Server.State
pytestmark = pytest.mark.django_db

# a read of the whole row (refresh_from_db, .first()): the claims' own
# compare-and-set reads name only pk, state and url
WHOLE_ROW = '"servers_server"."display_name"'


def whole_row_reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("SELECT") and WHOLE_ROW in q["sql"]]


def claimed_fields(server: Server, names: list[str]) -> dict[str, object]:
    return {name: getattr(server, name) for name in names}


START_FIELDS = ["state", "remove_on_stop", "profile_id", "user_options", "failure", "url"]
START_FIELDS += ["requested_at", "changed", "started", "attempt", "worker", "heartbeat"]


def test_a_start_claim_updates_the_server_without_reading_it_again(alice):
    server = ServerFactory(user=alice, state=State.FAILED, failure="out of memory", url="x")
    with CaptureQueriesContext(connection) as queries:
        assert services.request_start(server, by="alice", user_options={})
    assert whole_row_reads(queries) == []
    stored = Server.objects.get(pk=server.pk)
    assert claimed_fields(server, START_FIELDS) == claimed_fields(stored, START_FIELDS)
    assert (server.state, server.failure, server.url) == (State.STARTING, "", "")
    assert server.user_options == {}


def test_a_stop_claim_updates_the_server_without_reading_it_again(alice):
    server = ServerFactory(user=alice, name="lab", state=State.RUNNING, url="http://127.0.0.1:1")
    with CaptureQueriesContext(connection) as queries:
        assert services.request_stop(server, by="alice", remove=True)
    assert whole_row_reads(queries) == []
    stored = Server.objects.get(pk=server.pk)
    fields = ["state", "changed", "remove_on_stop"]
    assert claimed_fields(server, fields) == claimed_fields(stored, fields)
    assert (server.state, server.remove_on_stop) == (State.STOPPING, True)


def test_starting_a_stopped_server_reads_neither_its_owner_nor_its_row_twice(alice):
    ServerFactory(user=alice)
    with CaptureQueriesContext(connection) as queries:
        server = services.start_server(alice, "", by="alice")
    assert server.state == State.STARTING
    assert len(whole_row_reads(queries)) == 1  # get_or_create's
    owner_reads = [q["sql"] for q in queries if 'FROM "accounts_user"' in q["sql"]]
    assert owner_reads == []


def test_a_start_already_pending_answers_with_the_state_in_the_database(alice):
    ServerFactory(user=alice, state=State.STARTING)
    server = services.start_server(alice, "", by="alice")
    assert server.state == State.STARTING


def test_a_spawn_lease_is_taken_from_the_row_just_read_without_reading_it_again(alice):
    ServerFactory(user=alice, state=State.STARTING)
    server = Server.objects.get(user=alice)
    before = server.attempt
    with CaptureQueriesContext(connection) as queries:
        claimed = leases.claim(server, fresh=True)
    assert claimed is not None
    attempt, previous = claimed
    assert previous == before == ""
    assert whole_row_reads(queries) == []
    stored = Server.objects.get(pk=server.pk)
    assert (stored.attempt, stored.worker) == (attempt, identity())
    assert (server.attempt, server.worker) == (attempt, identity())


def test_a_spawn_lease_read_before_another_attempt_moved_it_is_taken_from_the_new_row(alice):
    """The row moved after it was read (an attempt took it, then was released
    by a requeue): the stale copy's compare-and-set fails, and the claim reads
    the row and takes over from that attempt."""
    ServerFactory(user=alice, state=State.STARTING)
    stale = Server.objects.get(user=alice)
    earlier = uuid.uuid4().hex
    Server.objects.filter(pk=stale.pk).update(attempt=earlier, worker="", heartbeat=timezone.now())
    claimed = leases.claim(stale, fresh=True)
    assert claimed is not None
    attempt, previous = claimed
    assert previous == earlier
    assert Server.objects.get(pk=stale.pk).attempt == attempt != earlier


def test_a_spawn_lease_read_while_starting_is_not_taken_once_the_server_stopped(alice):
    ServerFactory(user=alice, state=State.STARTING)
    stale = Server.objects.get(user=alice)
    Server.objects.filter(pk=stale.pk).update(state=State.STOPPED)
    assert leases.claim(stale, fresh=True) is None
    assert Server.objects.get(pk=stale.pk).attempt == ""
