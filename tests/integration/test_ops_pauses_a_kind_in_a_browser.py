"""The operations view's limits and pauses, in a real browser: staff pause a kind with its button, a job of it
submitted from another tab waits saying why, and Resume lets it run."""

from __future__ import annotations

from channels.db import database_sync_to_async
from playwright.async_api import expect

from tasks import limits
from tests.factories import UserFactory
from tests.integration.browser import BROWSER_TESTS, JOB_TIMEOUT, Dashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS


async def test_a_paused_kind_waits_until_resumed_from_the_operations_view(dashboard: Dashboard) -> None:
    staff = await database_sync_to_async(UserFactory.create)(is_staff=True)
    await dashboard.log_in(staff.username)
    page = dashboard.page
    await page.goto("/ops/")
    row = page.locator('#ops-controls tr[data-kind="demo.countdown"]')
    try:
        await row.get_by_role("button", name="Pause").click()
        await expect(row).to_have_attribute("data-paused", "true")
        await expect(row.locator("td").nth(2)).to_have_text("Paused")
        await page.wait_for_timeout(1500)  # each worker process sees a pause within a second

        other = await dashboard.another_tab()
        await other.page.goto("/")
        await other.wait_live()
        countdown = await other.start_countdown(steps=1)
        await expect(countdown).to_contain_text("paused by an operator", timeout=JOB_TIMEOUT)
        await expect(row.locator("td").nth(1)).to_have_text("1", timeout=JOB_TIMEOUT)  # held

        await row.get_by_role("button", name="Resume").click()
        await expect(row).to_have_attribute("data-paused", "false")
        await other.wait_status(countdown, "succeeded")
    finally:
        await database_sync_to_async(limits.set_paused)("demo.countdown", False, "test cleanup")
