"""OpenID Connect sign-in in headless Debian chromium, through the real router
and a real provider (tests/services/oidc_provider.py): the whole redirect flow,
group claims to hub groups and admin, a refused person, and then a server
started and reached through the router with that login."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from accounts.models import User
from servers.models import Server
from tests.browser.test_signup_to_jupyterlab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SPAWN_TIMEOUT_MS,
    new_page,
    shot,
)
from tests.factories import ProfileFactory
from tests.limits import clear_sign_in_limits
from tests.services.oidc_provider import CLIENT_ID, CLIENT_SECRET, start_provider

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in_with_provider(page: Page, base: str, account: str) -> None:
    page.goto(f"{base}/hub/login")
    page.click("#sign-in-providers a")
    page.fill("input[name=login]", account)  # the provider's own login form
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # the provider's consent page


def journey(base: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context, page = new_page(browser)
            sign_in_with_provider(page, base, "carol")
            expect(page.locator("#not-allowed")).to_contain_text("not allowed")
            shot(page, "oidc-1-refused")
            context.close()

            context, page = new_page(browser)
            sign_in_with_provider(page, base, "alice")
            expect(page).to_have_url(f"{base}/hub/home")
            shot(page, "oidc-2-home")
            page.click("#start-server")
            page.click("#start")  # the profile picker, its one profile chosen
            page.wait_for_url(re.compile(r"/user/alice/lab"), timeout=SPAWN_TIMEOUT_MS)
            expect(page.locator(".jp-LauncherCard").first).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
            shot(page, "oidc-3-jupyterlab")
            context.close()
        finally:
            browser.close()


def test_openid_connect_sign_in_then_a_server_through_the_router(
    live_hub,
    celery_live_worker,
    router,
    start_server,
    monkeypatch,
    settings,
    tmp_path,
):
    # start_server is requested for its teardown: it kills every server left running
    from hubsite import signin

    clear_sign_in_limits()
    ProfileFactory(slug="standard", display_name="Standard environment", default=True)
    provider = start_provider(tmp_path, [f"{router.url}/hub/oauth_callback"])
    try:
        for name, value in {
            "HUB_OIDC_ISSUER": provider.issuer,
            "HUB_OIDC_CLIENT_ID": CLIENT_ID,
            "HUB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "HUB_OIDC_SCOPES": "openid profile email groups",
            "HUB_OIDC_GROUPS_CLAIM": "groups",
            "HUB_OIDC_ALLOWED_GROUPS": "researchers",
            "HUB_OIDC_ADMIN_GROUPS": "hub-admins",
        }.items():
            monkeypatch.setenv(name, value)
        settings.HUB_SOCIAL_PROVIDERS = signin.social_providers()
        settings.SOCIALACCOUNT_PROVIDERS = signin.socialaccount_settings(
            settings.HUB_SOCIAL_PROVIDERS
        )
        # Playwright's sync API runs an event loop in its thread, where Django
        # refuses ORM calls: the browser gets a thread, the database stays here.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(journey, router.url).result()
    finally:
        provider.stop()

    alice = User.objects.get(username="alice")
    assert (alice.sign_in, alice.is_superuser) == ("oidc", True)
    assert sorted(g.name for g in alice.hub_groups.all()) == ["hub-admins", "researchers"]
    assert alice.servers.get(name="").state == Server.State.RUNNING
    assert not User.objects.filter(username="carol").exists()
