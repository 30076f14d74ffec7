"""System checks of HUB_LOCAL_ISOLATION: a mode that cannot work here stops the
hub at start (issue 8 finding 3)."""

from __future__ import annotations

from hubsite import checks


def ids(settings) -> list[str]:
    return [m.id for m in checks.check_local_isolation()]


def test_no_isolation_with_open_signup_is_a_warning(settings):
    settings.HUB_LOCAL_ISOLATION, settings.HUB_SIGNUP_OPEN = "none", True
    assert ids(settings) == ["hubsite.W010"]


def test_no_isolation_with_closed_signup_is_accepted(settings):
    settings.HUB_LOCAL_ISOLATION, settings.HUB_SIGNUP_OPEN = "none", False
    assert ids(settings) == []


def test_sandbox_without_bubblewrap_is_an_error(settings, monkeypatch):
    settings.HUB_LOCAL_ISOLATION = "sandbox"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert ids(settings) == ["hubsite.E011"]


def test_auto_with_bubblewrap_is_accepted(settings):
    settings.HUB_LOCAL_ISOLATION = "auto"
    assert ids(settings) == []
