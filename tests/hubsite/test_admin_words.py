"""The Django admin speaks the hub's words: one spelling of "API token", "URL"
and "CPU", the hub's help texts instead of Django's stock ones, one creation
date on a user, help on the profile's JSON and limit fields, and the event
history newest first, to the second."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from servers.models import Server, ServerEvent
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

STOCK_USER_HELP = [
    "Designates that this user has all permissions",
    "Designates whether this user should be treated as active",
    "150 characters or fewer",
    "Designates whether the user can log into this admin site",
]


@pytest.fixture
def staff(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def test_the_admin_index_spells_api_token_one_way(staff):
    page = text(staff.get("/hub/admin/"))
    assert "API tokens" in page
    assert not re.search(r"Api tokens?|Api token", page)


def test_the_user_page_has_the_hubs_help_and_one_creation_date(staff, alice):
    page = text(staff.get(f"/hub/admin/accounts/user/{alice.pk}/change/"))
    assert [stock for stock in STOCK_USER_HELP if stock in page] == []
    assert "The hub's admin flag" in page
    assert "1-63 lowercase letters" in page
    assert "Created" in page and "Date joined" not in page


def test_the_server_page_says_url(staff, alice):
    server = ServerFactory(user=alice, state=Server.State.RUNNING, url="http://127.0.0.1:9")
    page = text(staff.get(f"/hub/admin/servers/server/{server.pk}/change/"))
    assert "<label>URL:</label>" in page and ">Url:<" not in page
    assert "http://127.0.0.1:9" in page


def test_the_profile_page_says_cpu_and_explains_its_fields(staff):
    page = text(staff.get("/hub/admin/servers/profile/add/"))
    assert "CPU limit" in page and "Cpu limit" not in page
    assert "Memory limit" in page
    for field in ("environment", "options", "spawner_overrides", "extra_resource_limits"):
        pattern = rf'<div class="help" id="id_{field}_helptext">\s*<div>(.*?)</div>'
        help_text = re.search(pattern, page)
        assert help_text and help_text.group(1).startswith("JSON"), field
    for field in ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee"):
        assert f'id="id_{field}_helptext"' in page, field


def test_events_are_listed_newest_first_with_seconds(staff, alice):
    server = ServerFactory(user=alice)
    now = timezone.now().replace(microsecond=0)
    later = now + timedelta(seconds=7)
    ServerEvent.objects.create(server=server, kind="progress", message="the earlier event")
    ServerEvent.objects.filter(message="the earlier event").update(created=now)
    ServerEvent.objects.create(server=server, kind="progress", message="the later event")
    ServerEvent.objects.filter(message="the later event").update(created=later)
    page = text(staff.get("/hub/admin/servers/serverevent/"))
    assert page.index("the later event") < page.index("the earlier event")
    assert later.strftime("%Y-%m-%d %H:%M:%S") in page
