"""The admin's operations page: running servers, pending spawns (with their
lease), recent failures and what the culler and reconcile did."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from servers.models import Server, ServerEvent
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db
State = Server.State


@pytest.fixture
def staff(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_operations_page_lists_running_pending_and_failed_servers(staff, alice, bob, carol):
    now = timezone.now()
    ServerFactory(user=alice, state=State.RUNNING, url="http://127.0.0.1:1", started=now)
    ServerFactory(
        user=bob,
        state=State.STARTING,
        requested_at=now,
        worker="host@123@456",
        heartbeat=now - timedelta(seconds=42),
    )
    failed = ServerFactory(user=carol, state=State.FAILED, failure="the <b>server</b> exited")
    ServerEvent.objects.create(
        server=failed, kind=ServerEvent.Kind.CULLED, message="Culled: idle for 1:00:00"
    )
    page = staff.get("/hub/admin/servers/server/operations/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "<strong>1</strong> running" in text and "<strong>1</strong> starting" in text
    assert "bob/" in text and "host@123@456" in text and "42 s ago" in text
    assert "the &lt;b&gt;server&lt;/b&gt; exited" in text  # escaped
    assert "Culled: idle for 1:00:00" in text
    assert "alice/" in text


def test_operations_page_is_for_staff_only(alice):
    client = Client()
    client.force_login(alice)
    response = client.get("/hub/admin/servers/server/operations/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_server_list_links_to_operations(staff):
    assert (
        b"/hub/admin/servers/server/operations/" in staff.get("/hub/admin/servers/server/").content
    )
