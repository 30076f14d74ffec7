"""LDAP / Active Directory sign-in against a real slapd (tests/services/slapd.py):
DN-template and search binds, groups, admin groups, TLS, and usernames that try
to widen a search."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Group, User
from tests.services.slapd import BASE, ROOT_DN, ROOT_PASSWORD, change_membership, group_dn

pytestmark = pytest.mark.django_db

TEMPLATE = f"uid={{username}},ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"


def log_in(username: str, password: str) -> Client:
    client = Client()
    client.post("/hub/login", {"login": username, "password": password})
    return client


def logged_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


@pytest.fixture
def dn_template(use_ldap, fresh_limits):
    use_ldap(HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE, HUB_LDAP_GROUP_SEARCH_BASE=GROUPS)


@pytest.fixture
def search_bind(use_ldap, fresh_limits):
    def configure(**extra: str) -> None:
        variables = {
            "HUB_LDAP_USER_SEARCH_BASE": f"ou=people,{BASE}",
            "HUB_LDAP_BIND_DN": ROOT_DN,
            "HUB_LDAP_BIND_PASSWORD": ROOT_PASSWORD,
            "HUB_LDAP_GROUP_SEARCH_BASE": GROUPS,
        }
        use_ldap(**{**variables, **extra})

    configure()
    return configure


def test_a_dn_template_bind_signs_in_and_maps_attributes(dn_template):
    assert logged_in_as(log_in("alice", "alice-pw")) == "alice"
    alice = User.objects.get(username="alice")
    assert (alice.sign_in, alice.email, alice.display_name) == (
        "ldap",
        "alice@example.org",
        "Alice Liddell",
    )
    assert not alice.has_usable_password()


def test_a_search_then_bind_signs_in(search_bind):
    assert logged_in_as(log_in("bob", "bob-pw")) == "bob"


def test_the_bind_password_can_come_from_a_file(search_bind, tmp_path):
    secret = tmp_path / "bind-password"
    secret.write_text(ROOT_PASSWORD + "\n")
    search_bind(HUB_LDAP_BIND_PASSWORD="", HUB_LDAP_BIND_PASSWORD_FILE=str(secret))
    assert logged_in_as(log_in("bob", "bob-pw")) == "bob"


@pytest.mark.parametrize("fixture", ["dn_template", "search_bind"])
def test_a_wrong_password_signs_nobody_in_and_creates_nobody(request, fixture):
    request.getfixturevalue(fixture)
    client = Client()
    response = client.post("/hub/login", {"login": "alice", "password": "bob-pw"})
    assert response.status_code == 200 and b"not correct" in response.content
    assert logged_in_as(client) is None
    assert not User.objects.filter(username="alice").exists()


def test_directory_groups_become_hub_groups(dn_template):
    log_in("alice", "alice-pw")
    alice = User.objects.get(username="alice")
    assert sorted(g.name for g in alice.hub_groups.all()) == ["hub-admins", "researchers"]


def test_a_directory_name_in_capitals_is_one_hub_user(dn_template):
    assert logged_in_as(log_in("Dave", "dave-pw")) == "dave"
    assert logged_in_as(log_in("DAVE", "dave-pw")) == "dave"
    dave = User.objects.get(username="dave")
    assert User.objects.filter(username__iexact="dave").count() == 1
    # a group name that is not a hub name is made into one
    assert [g.name for g in dave.hub_groups.all()] == ["data-science"]


def test_only_members_of_allowed_groups_sign_in(use_ldap, fresh_limits):
    use_ldap(
        HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE,
        HUB_LDAP_GROUP_SEARCH_BASE=GROUPS,
        HUB_LDAP_ALLOWED_GROUPS=f"{group_dn('nonexistent')}; {group_dn('researchers')}",
    )
    assert logged_in_as(log_in("bob", "bob-pw")) == "bob"
    assert logged_in_as(log_in("carol", "carol-pw")) is None
    assert not User.objects.filter(username="carol").exists()


def test_a_misspelled_allowed_group_lets_nobody_in(use_ldap, fresh_limits):
    use_ldap(
        HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE,
        HUB_LDAP_GROUP_SEARCH_BASE=GROUPS,
        HUB_LDAP_ALLOWED_GROUPS=group_dn("reserchers"),
    )
    assert logged_in_as(log_in("bob", "bob-pw")) is None


def test_admin_groups_make_and_unmake_admins_and_groups_follow_the_directory(
    dn_template, use_ldap, slapd
):
    use_ldap(
        HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE,
        HUB_LDAP_GROUP_SEARCH_BASE=GROUPS,
        HUB_LDAP_ADMIN_GROUPS=group_dn("hub-admins"),
    )
    log_in("bob", "bob-pw")
    assert not User.objects.get(username="bob").is_superuser
    change_membership(slapd, "hub-admins", "bob", add=True)
    try:
        log_in("bob", "bob-pw")
        bob = User.objects.get(username="bob")
        assert bob.is_superuser and bob.is_staff
        assert "hub-admins" in {g.name for g in bob.hub_groups.all()}
    finally:
        change_membership(slapd, "hub-admins", "bob", add=False)
    log_in("bob", "bob-pw")
    bob = User.objects.get(username="bob")
    assert not bob.is_superuser and not bob.is_staff
    assert [g.name for g in bob.hub_groups.all()] == ["researchers"]


def test_leaving_a_directory_group_keeps_memberships_given_in_the_hub(dn_template):
    Group.objects.create(name="course-101")
    log_in("bob", "bob-pw")
    bob = User.objects.get(username="bob")
    Group.objects.get(name="course-101").members.add(bob)
    log_in("bob", "bob-pw")
    assert sorted(g.name for g in bob.hub_groups.all()) == ["course-101", "researchers"]


def test_start_tls_with_the_servers_ca_signs_in(use_ldap, fresh_limits):
    use_ldap(HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE, HUB_LDAP_START_TLS="true")
    assert logged_in_as(log_in("alice", "alice-pw")) == "alice"


def test_ldaps_signs_in(use_ldap, slapd, fresh_limits):
    use_ldap(HUB_LDAP_URI=slapd.ldaps_uri, HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE)
    assert logged_in_as(log_in("alice", "alice-pw")) == "alice"


def test_start_tls_refuses_a_server_certificate_it_cannot_verify(use_ldap, tmp_path, fresh_limits):
    from tests.services.certs import make_certs

    other_ca = make_certs(tmp_path).ca
    use_ldap(
        HUB_LDAP_USER_DN_TEMPLATE=TEMPLATE,
        HUB_LDAP_START_TLS="true",
        HUB_LDAP_CA_FILE=str(other_ca),
    )
    assert logged_in_as(log_in("alice", "alice-pw")) is None


@pytest.mark.parametrize(
    "username",
    ["ali*", "*", "alice)(uid=*", "*)(|(uid=*", "alice)(|(objectClass=*", "al\\2a"],
)
def test_filter_metacharacters_never_widen_the_search(search_bind, username):
    # unescaped, "(uid=ali*)" would find alice and her password would then bind
    assert logged_in_as(log_in(username, "alice-pw")) is None
    assert list(User.objects.values_list("username", flat=True)) == []


@pytest.mark.parametrize("username", ["alice,ou=people", "*", "alice+cn=x", "uid=alice"])
def test_dn_metacharacters_never_change_the_bound_entry(dn_template, username):
    assert logged_in_as(log_in(username, "alice-pw")) is None
    assert list(User.objects.values_list("username", flat=True)) == []


def test_a_hub_password_set_on_a_directory_name_stops_working(dn_template, settings):
    settings.HUB_SIGNUP_REQUIRES_APPROVAL = False
    pw = "squatter password 1"
    Client().post("/hub/signup", {"username": "carol", "password1": pw, "password2": pw})
    assert logged_in_as(log_in("carol", "carol-pw")) == "carol"
    assert logged_in_as(log_in("carol", pw)) is None


def test_with_auth_state_the_users_server_learns_their_directory_entry(dn_template, settings):
    from cryptography.fernet import Fernet

    from servers.services import build_spec
    from tests.factories import ServerFactory

    settings.HUB_AUTH_STATE = True
    settings.HUB_CRYPT_KEY = Fernet.generate_key().decode()
    log_in("alice", "alice-pw")
    spec = build_spec(ServerFactory(user=User.objects.get(username="alice")), api_token="t")
    assert spec.environment["UPSTREAM_LDAP_DN"] == f"uid=alice,ou=people,{BASE}"


def test_someone_taken_out_of_the_allowed_group_cannot_start_any_more(
    search_bind, slapd, api_client_for
):
    search_bind(HUB_LDAP_ALLOWED_GROUPS=group_dn("researchers"))
    log_in("bob", "bob-pw")
    bob = User.objects.get(username="bob")
    change_membership(slapd, "researchers", "bob", add=False)
    try:
        response = api_client_for(bob).post("/hub/api/users/bob/server")
    finally:
        change_membership(slapd, "researchers", "bob", add=True)
    assert response.status_code == 403
    assert not bob.servers.filter(state="starting").exists()


def test_a_directory_group_left_since_the_login_is_left_in_the_hub_at_start(
    search_bind, slapd, api_client_for, django_capture_on_commit_callbacks
):
    log_in("bob", "bob-pw")
    bob = User.objects.get(username="bob")
    change_membership(slapd, "researchers", "bob", add=False)
    try:
        with django_capture_on_commit_callbacks(execute=False):
            response = api_client_for(bob).post("/hub/api/users/bob/server")
    finally:
        change_membership(slapd, "researchers", "bob", add=True)
    assert response.status_code in (201, 202)
    assert list(bob.hub_groups.all()) == []
