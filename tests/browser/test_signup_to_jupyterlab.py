"""The whole journey in headless Debian chromium, through the real router:
sign up, an admin approves (Django admin, second browser context), log in,
pick a profile, watch the progress bar, land in JupyterLab and run a cell,
then stop the server from the home page and watch the page follow."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from accounts.models import User
from servers.models import Server
from tests.conftest import PASSWORD
from tests.factories import ProfileFactory

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SPAWN_TIMEOUT_MS = 120_000
STOP_TIMEOUT_MS = 60_000
# set to a directory to keep a screenshot of each step (debugging aid, e.g. in CI)
SCREENSHOTS = os.environ.get("HUB_TEST_SCREENSHOTS", "")


def shot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    return context, context.new_page()


def log_in(page: Page, base: str, username: str, next_path: str = "") -> None:
    page.goto(f"{base}/hub/login" + (f"?next={next_path}" if next_path else ""))
    page.fill("#id_login", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")


def sign_up(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/hub/login")
    page.click("text=Sign up")
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("#signup-form button[type=submit]")
    expect(page.locator("#awaiting-approval")).to_contain_text("waiting for approval")


def approve_in_admin(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/hub/admin/accounts/user/?is_approved__exact=0")
    row = page.locator("#result_list tr", has_text=username)
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Approved 1 user")


def run_cell_in_jupyterlab(page: Page, code: str) -> None:
    """Open a notebook from the launcher; type only once the kernel is idle and
    the editor has focus, and check the text landed before running it."""
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    idle = page.get_by_role("button", name=re.compile(r"\| Idle$"))
    expect(idle.first).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    editor.click()
    expect(editor).to_be_focused()
    editor.press_sequentially(code)
    expect(editor).to_have_text(code)
    page.keyboard.press("Shift+Enter")


def journey(
    base: str, username: str = "newbie", at: Callable[[str], None] = lambda step: None
) -> None:
    """Everything a person and an admin do, in two browser contexts. AT(step)
    is called between steps ("approved", "spawning", "in-lab"): where the
    high-availability test kills processes (tests/hubsite/test_run_ha.py)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            user_context, page = new_page(browser)
            sign_up(page, base, username)
            shot(page, "1-signed-up")
            log_in(page, base, username)
            expect(page.locator("#awaiting-approval")).to_be_visible()

            admin_context, admin_page = new_page(browser)
            log_in(admin_page, base, "admin", next_path="/hub/admin/")
            approve_in_admin(admin_page, base, username)
            shot(admin_page, "2-approved-in-admin")
            admin_context.close()
            at("approved")

            log_in(page, base, username)
            expect(page).to_have_url(f"{base}/hub/home")
            page.click("#start-server")
            page.check("input[name=profile][value=standard]")
            shot(page, "3-profile-picker")
            page.click("#start")

            expect(page).to_have_url(re.compile(rf"/hub/spawn-pending/{username}$"))
            expect(page.locator("#progress")).to_be_visible()
            shot(page, "4-pending")
            at("spawning")

            page.wait_for_url(re.compile(rf"/user/{username}/lab"), timeout=SPAWN_TIMEOUT_MS)
            launcher = page.locator(".jp-LauncherCard").first
            expect(launcher).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
            at("in-lab")
            run_cell_in_jupyterlab(page, "print(6 * 7)")
            output = page.locator(".jp-OutputArea-output").first
            expect(output).to_have_text("42", timeout=SPAWN_TIMEOUT_MS)
            shot(page, "5-jupyterlab-cell")

            # Stop from the home page: it follows the state by itself (no reload here)
            page.goto(f"{base}/hub/home")
            page.click("#stop-server")
            expect(page.locator("#default-server")).to_contain_text("Stopping")
            shot(page, "6-stopping")
            expect(page.locator("#start-server")).to_be_visible(timeout=STOP_TIMEOUT_MS)
            expect(page.locator("#default-server .badge")).to_have_text("Stopped")
            shot(page, "7-stopped")
            user_context.close()
        finally:
            browser.close()


def test_signup_approval_spawn_and_a_cell_in_jupyterlab(
    live_hub, celery_live_worker, router, start_server, admin
):
    # start_server is requested for its teardown: it kills every server left running
    ProfileFactory(slug="standard", display_name="Standard environment", default=True)
    ProfileFactory(slug="bigger", display_name="Bigger environment", order=1)
    # Playwright's sync API runs an event loop in its thread, where Django
    # refuses ORM calls: the browser gets a thread, the database stays here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(journey, router.url).result()

    newbie = User.objects.get(username="newbie")
    server = newbie.servers.get(name="")
    assert newbie.is_approved
    assert server.state == Server.State.STOPPED
    assert server.profile.slug == "standard"
    kinds = list(server.events.order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == ["stop_requested", "stopped"]
