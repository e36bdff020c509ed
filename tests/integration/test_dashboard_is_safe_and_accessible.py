"""The dashboard is safe by construction (CSP, text never parsed as HTML) and usable from the keyboard."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from playwright.async_api import Locator, expect

from core.middleware import CONTENT_SECURITY_POLICY
from tests.factories import UserFactory
from tests.integration.browser import BROWSER_TESTS
from tests.integration.conftest import LiveStack

if TYPE_CHECKING:
    from tests.integration.browser import Dashboard, SocketTap

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

HOSTILE = '<img src="x" onerror="window.pwned = true">'


def policy_of(url: str) -> str | None:
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        headers = exc.headers
    policy: str | None = headers.get("Content-Security-Policy")
    return policy


@pytest.mark.parametrize(
    "path",
    ["/", "/accounts/login/", "/admin/login/", "/static/js/dashboard.js", "/static/css/app.css", "/no-such-page/"],
)
async def test_every_response_carries_the_content_security_policy(live_stack: LiveStack, path: str) -> None:
    policy = await asyncio.to_thread(policy_of, live_stack.base_url + path)
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True, is_superuser=True)


async def test_the_admin_works_under_the_policy(dashboard: Dashboard, staff: User) -> None:
    await dashboard.log_in(staff.username)
    job = await dashboard.start_countdown(steps=2)
    await dashboard.wait_status(job, "succeeded")

    page = dashboard.page
    await page.goto("/admin/tasks/job/")
    await expect(page.locator("#result_list")).to_contain_text("demo.countdown")
    # The admin's own scripts run (they are files, not inline): its theme toggle works.
    before = await page.evaluate("document.documentElement.dataset.theme || 'auto'")
    await page.locator("button.theme-toggle").first.click()
    await expect(page.locator("html")).not_to_have_attribute("data-theme", before)
    await page.locator("#result_list a").first.click()
    await expect(page.locator("#content h1")).to_contain_text("job")
    # Any CSP violation would be a console error, which fails the test at teardown.


async def test_job_text_from_the_server_is_shown_as_text_never_as_html(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    job: dict[str, Any] = {
        "id": "00000000-0000-4000-8000-000000000001",
        "kind": HOSTILE,
        "status": "failed",
        "params": {"note": HOSTILE},
        "attempt": 1,
        "seq": 3,
        "progress": {"current": 1, "total": 2, "percent": 50.0, "stage": HOSTILE, "message": HOSTILE},
        "result": None,
        "error": {"code": "x", "message": HOSTILE},
        "created_at": "2026-01-01T00:00:00.000Z",
        "started_at": "2026-01-01T00:00:01.000Z",
        "finished_at": "2026-01-01T00:00:02.000Z",
    }
    # As if the server had sent it: the page cannot tell.
    tap.routes[-1][0].send(json.dumps({"type": "job.failed", "job": job}))

    shown = dashboard.job(job["id"])
    await expect(shown.locator(".job-kind")).to_have_text(HOSTILE)
    await expect(shown.locator(".job-message")).to_have_text(HOSTILE)
    await expect(shown.locator(".job-error")).to_have_text("Error: " + HOSTILE)
    await expect(shown.locator("img")).to_have_count(0)
    assert await dashboard.page.evaluate("window.pwned === undefined")


async def test_a_countdown_can_be_run_and_cancelled_from_the_keyboard(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    steps = page.locator("#form-countdown").get_by_label("Steps")
    await tab_until(dashboard, steps)
    await page.keyboard.type("400")
    await page.keyboard.press("Tab")
    await page.keyboard.type("100")
    await page.keyboard.press("Enter")
    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "running")

    cancel = job.get_by_role("button", name="Cancel countdown job")
    await tab_until(dashboard, cancel)
    await page.keyboard.press("Enter")
    await dashboard.wait_status(job, "cancelled")
    # The announcement reaches screen readers through the live region.
    await expect(page.locator("#announcer")).to_have_text("Countdown job was cancelled.")


async def tab_until(dashboard: Dashboard, target: Locator, presses: int = 40) -> None:
    """Press Tab until `target` has the focus; fail if it is never reached."""
    for _ in range(presses):
        await dashboard.page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reachable with Tab")
