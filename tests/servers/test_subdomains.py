"""Per-user hosts (HUB_SUBDOMAIN_HOST, JupyterHub's subdomain_host): every URL
the hub makes for a server is on <name>.<host>, the hub's own stay on the hub."""

from __future__ import annotations

import pytest

from routing import hostnames
from routing.router import edges
from servers import hosts, services
from servers.models import Server
from servers.spawners.base import hub_environment
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
State = Server.State
DOMAIN = "hub.example.org"


@pytest.fixture
def subdomains(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.HUB_PUBLIC_URL = f"https://{DOMAIN}"
    return settings


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


# --- the domain functions -------------------------------------------------------


def test_user_host_is_empty_when_subdomains_are_off(settings):
    settings.HUB_SUBDOMAIN_HOST = ""
    assert hosts.user_host("alice") == ""
    assert hosts.browser_url("alice", "/user/alice/") == "/user/alice/"


def test_user_host_takes_scheme_and_port_from_the_public_url(settings):
    settings.HUB_SUBDOMAIN_HOST = DOMAIN
    settings.HUB_PUBLIC_URL = f"http://{DOMAIN}:8000"
    assert hosts.user_host("alice") == f"http://alice.{DOMAIN}:8000"
    assert hosts.hub_host() == f"http://{DOMAIN}:8000"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("alice", True),
        ("a-b", True),
        ("a1", True),
        ("1a", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("a-", False),
        ("-a", False),
        ("john.doe", False),
        ("j_smith", False),
        ("Al", False),
        ("", False),
    ],
)
def test_hub_and_router_use_one_rule_for_which_names_get_a_host(name, label):
    assert hosts.is_dns_label is hostnames.is_dns_label
    assert edges.is_dns_label is hostnames.is_dns_label
    assert hostnames.is_dns_label(name) is label


@pytest.mark.parametrize(
    ("name", "ok"),
    [("hub.example.org", True), ("localhost", True), ("hub..org", False), ("a." * 127, False)],
)
def test_a_dns_name_is_labels_joined_by_dots(name, ok):
    assert hostnames.is_dns_name(name) is ok


def test_a_name_that_is_no_dns_label_has_no_host(subdomains):
    assert hosts.user_host("john.doe") == ""
    assert hosts.is_hostless("john.doe")
    assert not hosts.is_hostless("alice")


# --- REST API -------------------------------------------------------------------


def test_api_full_url_is_on_the_hub_when_subdomains_are_off(alice, api_client_for, settings):
    settings.HUB_PUBLIC_URL = f"https://{DOMAIN}"
    ServerFactory(user=alice, name="box", state=State.RUNNING)
    model = api_client_for(alice).get("/hub/api/users/alice/servers/box").json()
    assert model["url"] == "/user/alice/box/"
    assert model["full_url"] == f"https://{DOMAIN}/user/alice/box/"


def test_api_urls_are_on_the_user_host_and_progress_on_the_hub(alice, api_client_for, subdomains):
    ServerFactory(user=alice, name="box", state=State.RUNNING)
    model = api_client_for(alice).get("/hub/api/users/alice/servers/box").json()
    assert model["url"] == f"https://alice.{DOMAIN}/user/alice/box/"
    assert model["full_url"] == f"https://alice.{DOMAIN}/user/alice/box/"
    assert model["full_progress_url"] == (
        f"https://{DOMAIN}/hub/api/users/alice/servers/box/progress"
    )


def test_api_user_model_server_is_on_the_user_host(alice, api_client_for, subdomains):
    ServerFactory(user=alice, state=State.RUNNING)
    model = api_client_for(alice).get("/hub/api/users/alice").json()
    assert model["server"] == f"https://alice.{DOMAIN}/user/alice/"


# --- what a spawned server is told ----------------------------------------------


def spawn_env(server: Server) -> dict[str, str]:
    spec = services.build_spec(server, "token")
    return hub_environment(spec, bind_url="http://127.0.0.1:41234")


def test_spawner_env_points_at_the_user_host_and_logs_in_on_the_hub(alice, subdomains):
    env = spawn_env(ServerFactory(user=alice, name="box"))
    assert env["JUPYTERHUB_HOST"] == f"https://{DOMAIN}"
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == (
        f"https://alice.{DOMAIN}/user/alice/box/oauth_callback"
    )
    assert env["JUPYTERHUB_PUBLIC_URL"] == f"https://alice.{DOMAIN}/user/alice/box/"
    assert env["JUPYTERHUB_PUBLIC_HUB_URL"] == f"https://{DOMAIN}/hub/"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/alice/box/"


def test_spawner_env_is_relative_when_subdomains_are_off(alice, settings):
    settings.HUB_SUBDOMAIN_HOST = ""
    settings.HUB_PUBLIC_URL = f"https://{DOMAIN}"
    env = spawn_env(ServerFactory(user=alice))
    assert env["JUPYTERHUB_HOST"] == ""
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/user/alice/oauth_callback"
    assert env["JUPYTERHUB_PUBLIC_URL"] == f"https://{DOMAIN}/user/alice/"
    assert env["JUPYTERHUB_PUBLIC_HUB_URL"] == f"https://{DOMAIN}/hub/"


# --- hub pages send browsers to the user's host ---------------------------------


@pytest.mark.parametrize(
    ("server", "page", "location"),
    [
        ("work", "/hub/spawn/alice/work", "/user/alice/work/"),
        ("", "/hub/spawn-pending/alice?next=/user/alice/lab/x.ipynb", "/user/alice/lab/x.ipynb"),
        (None, "/hub/user-redirect/lab/x.ipynb?kernel=py", "/user/alice/lab/x.ipynb?kernel=py"),
        ("", "/hub/user/alice/lab", "/user/alice/lab?redirects=1"),  # the router's fallback
    ],
)
def test_hub_pages_send_the_browser_to_the_user_host(
    as_alice, alice, subdomains, server, page, location
):
    """Spawn page, pending page (keeping `next`), user-redirect and the router's
    fallback page of a running server all answer with the user's own host."""
    if server is not None:
        ServerFactory(user=alice, name=server, state=State.RUNNING)
    assert as_alice.get(page)["Location"] == f"https://alice.{DOMAIN}{location}"


def test_home_page_links_to_the_user_host(as_alice, alice, subdomains):
    ServerFactory(user=alice, state=State.RUNNING)
    content = as_alice.get("/hub/home").content
    assert f'href="https://alice.{DOMAIN}/user/alice/"'.encode() in content


# --- a username that cannot be a host name --------------------------------------


@pytest.fixture
def john(db):
    return UserFactory(username="john.doe")


def test_start_is_refused_for_a_name_that_cannot_be_a_host(john, api_client_for, subdomains):
    response = api_client_for(john).post("/hub/api/users/john.doe/server")
    assert response.status_code == 400
    assert "cannot be a host name" in response.json()["message"]
    assert not Server.objects.filter(user=john, state=State.STARTING).exists()


def test_router_fallback_explains_a_name_without_host(client, john, subdomains):
    client.force_login(john)
    response = client.get("/hub/user/john.doe/lab")
    assert response.status_code == 404
    assert b"cannot be one" in response.content


def test_a_dotted_name_starts_when_subdomains_are_off(john, api_client_for, settings):
    settings.HUB_SUBDOMAIN_HOST = ""
    response = api_client_for(john).post("/hub/api/users/john.doe/server")
    assert response.status_code == 202
