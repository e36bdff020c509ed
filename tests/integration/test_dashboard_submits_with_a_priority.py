"""The priority of a job submitted from the dashboard, in a real browser: the form's Priority choice goes with
the job.submit, the job is stored with it, and its row says so (a normal one says nothing)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from playwright.async_api import expect

from tasks.models import Job
from tests.integration.browser import BROWSER_TESTS, Dashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS


async def test_a_high_priority_countdown_is_stored_and_shown_high(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    await dashboard.wait_live()
    form = dashboard.page.locator("#form-countdown")
    await form.get_by_label("Priority").select_option("high")
    urgent = await dashboard.start_countdown(steps=1)
    await expect(urgent).to_have_attribute("data-priority", "high")
    await expect(urgent.locator(".job-priority")).to_have_text("high priority")
    job_id = await urgent.get_attribute("data-job-id")
    assert (await database_sync_to_async(Job.objects.get)(pk=job_id)).priority == "high"

    await form.get_by_label("Priority").select_option("normal")
    plain = await dashboard.start_countdown(steps=1)
    await expect(plain).to_have_attribute("data-priority", "normal")
    await expect(plain.locator(".job-priority")).to_be_hidden()
