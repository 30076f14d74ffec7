"""The shared cast: alice and bob (same group), carol (no group), admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import User
from tests.factories import GroupFactory, UserFactory

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing() -> Iterator[None]:
    """Passwords hashed at 1,000 PBKDF2 iterations in this process (tests/hashers.py);
    override_settings also clears Django's cached hashers, on the way in and out."""
    from django.conf import settings
    from django.test import override_settings

    quick = [
        "tests.hashers.QuickPBKDF2PasswordHasher",
        *(h for h in settings.PASSWORD_HASHERS if not h.endswith(".PBKDF2PasswordHasher")),
    ]
    with override_settings(PASSWORD_HASHERS=quick):
        yield


@pytest.fixture
def team(db):
    return GroupFactory(name="team")


@pytest.fixture
def alice(team) -> User:
    user = UserFactory(username="alice")
    team.members.add(user)
    return user


@pytest.fixture
def bob(team) -> User:
    user = UserFactory(username="bob")
    team.members.add(user)
    return user


@pytest.fixture
def carol(db) -> User:
    return UserFactory(username="carol")


@pytest.fixture
def admin(db) -> User:
    return UserFactory(username="admin", is_superuser=True, is_staff=True)


@pytest.fixture
def token_for(db) -> Callable[..., str]:
    """A raw API token for a user, with the given scopes (default: inherit)."""

    def make(user: User, scopes: list[str] | None = None) -> str:
        _, raw = account_services.issue_token(user, scopes=scopes or ["inherit"], note="test")
        return raw

    return make


@pytest.fixture
def api_client_for(token_for) -> Callable[..., APIClient]:
    """An API client authenticated with a fresh token of USER."""

    def make(user: User, scopes: list[str] | None = None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"token {token_for(user, scopes)}")
        return client

    return make


from tests.k8s import k8s_cluster, k8s_simulator  # noqa: E402, F401
from tests.live import celery_live_worker, live_hub, router, start_server  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _fresh_route_table_build() -> None:
    """Each test has a database of its own, and version numbers start again in
    it: the full route table kept for a version by an earlier test (whose
    factories' running servers the feed never saw) must not be served to this
    one. It was: a router started at version 0 in a live test could get an
    earlier test's /user/alice/ pointing at that test's port."""
    from routing.api import routes

    routes.forget_full_body()


@pytest.fixture(autouse=True, scope="session")
def _stop_zygotes_at_exit() -> Iterator[None]:
    """Prefork zygotes are detached from the worker that started them: stop
    the ones this session's spawns left behind (their servers are stopped by
    the fixtures that started them)."""
    yield
    from pathlib import Path

    from django.conf import settings

    from servers.spawners.local import Zygotes

    data = Path(settings.HUB_DATA_DIR)
    Zygotes(data / "run", data / "logs").stop_all()
