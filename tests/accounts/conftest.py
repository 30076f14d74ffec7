"""Fixtures of the accounts tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from hubsite import signin as signin_settings
from tests.limits import clear_sign_in_limits
from tests.live import ROOT
from tests.services.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider, start_provider
from tests.services.slapd import Slapd, start_slapd


@pytest.fixture
def fresh_limits(django_db_blocker):
    """Sign-in counters start at zero: they live in Redis or the cache table,
    which outlive a test's transaction (and, in Redis, the test run)."""
    with django_db_blocker.unblock():
        clear_sign_in_limits()
    yield
    with django_db_blocker.unblock():
        clear_sign_in_limits()


def database_url() -> str:
    """The test database as a HUB_DATABASE_URL, for hub processes the test starts."""
    from django.db import connection

    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return "sqlite:///" + str(db["NAME"])
    auth = db["USER"] + (":" + db["PASSWORD"] if db["PASSWORD"] else "")
    scheme = "mysql" if db["ENGINE"].endswith("mysql") else "postgresql"
    return f"{scheme}://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class HubProcess:
    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def launch_hub() -> HubProcess:
    """A separate hub process (gunicorn, as the Procfile runs it) on the test
    database, the same data dir and the same Redis: one more replica."""
    env = {**os.environ, "HUB_DATABASE_URL": database_url()}
    env["HUB_DATA_DIR"] = str(settings.HUB_DATA_DIR)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [str(Path(sys.executable).with_name("gunicorn")), "hubsite.wsgi"]
    command += ["--bind", "127.0.0.1:0", "--workers", "1", "--threads", "4"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "Listening at: " in line:
            url = line.split("Listening at: ")[1].split()[0]
            break
    else:
        proc.wait(10)
        raise AssertionError("hub did not start:\n" + "".join(seen))
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return HubProcess(url=url, proc=proc)


@pytest.fixture
def launched_hubs(transactional_db) -> Iterator[Callable[[], HubProcess]]:
    """Start hub processes on demand; every one is stopped at the end."""
    started: list[HubProcess] = []

    def launch() -> HubProcess:
        started.append(launch_hub())
        return started[-1]

    yield launch
    for hub in started:
        hub.stop()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory) -> Iterator[Slapd]:
    """A real slapd with the directory of tests/services/slapd.py (PEOPLE)."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


@pytest.fixture
def use_ldap(slapd, monkeypatch, settings) -> Callable[..., None]:
    """Configure LDAP sign-in from HUB_LDAP_* variables, through the same code
    that reads them at start (hubsite/signin.py); the hub's settings follow."""

    def configure(**variables: str) -> None:
        for name in list(os.environ):
            if name.startswith("HUB_LDAP_"):
                monkeypatch.delenv(name)
        variables.setdefault("HUB_LDAP_URI", slapd.uri)
        variables.setdefault("HUB_LDAP_CA_FILE", str(slapd.certs.ca))
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        for name, value in signin_settings.ldap_settings().items():
            setattr(settings, name, value)
        if signin_settings.LDAP_BACKEND not in settings.AUTHENTICATION_BACKENDS:
            settings.AUTHENTICATION_BACKENDS = [
                *settings.AUTHENTICATION_BACKENDS,
                signin_settings.LDAP_BACKEND,
            ]

    return configure


@pytest.fixture(scope="session")
def oidc_provider(live_server, tmp_path_factory) -> Iterator[OIDCProvider]:
    """A real OpenID Connect provider that redirects back to the test client's
    hub (http://testserver) and to the live hub."""
    live = live_server.url.replace("localhost", "127.0.0.1")
    uris = [f"{base}/hub/oauth_callback" for base in ("http://testserver", live)]
    uris += [
        f"{base}/hub/accounts/oidc/oidc/login/callback/" for base in ("http://testserver", live)
    ]
    provider = start_provider(tmp_path_factory.mktemp("oidc"), uris)
    yield provider
    provider.stop()


@pytest.fixture
def use_oidc(oidc_provider, monkeypatch, settings) -> Callable[..., None]:
    """Configure OpenID Connect sign-in from HUB_OIDC_* variables, through the
    code that reads them at start (hubsite/signin.py)."""

    def configure(**variables: str) -> None:
        for name in list(os.environ):
            if name.startswith(("HUB_OIDC_", "HUB_GOOGLE_")):
                monkeypatch.delenv(name)
        variables.setdefault("HUB_OIDC_ISSUER", oidc_provider.issuer)
        variables.setdefault("HUB_OIDC_CLIENT_ID", CLIENT_ID)
        variables.setdefault("HUB_OIDC_CLIENT_SECRET", CLIENT_SECRET)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        providers = signin_settings.social_providers()
        settings.HUB_SOCIAL_PROVIDERS = providers
        settings.SOCIALACCOUNT_PROVIDERS = signin_settings.socialaccount_settings(providers)

    return configure
