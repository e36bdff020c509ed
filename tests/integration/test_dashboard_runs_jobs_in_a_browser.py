"""The dashboard in a real browser: log in, run jobs, watch them, cancel, retry, see errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from playwright.async_api import expect

from tasks import kinds
from tests.integration.browser import BROWSER_TESTS

if TYPE_CHECKING:
    from tests.integration.browser import Dashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

FORMS = {"demo.countdown": "#form-countdown", "email.send": "#form-email", "file.process": "#form-file"}


async def test_logging_in_opens_the_live_dashboard_with_a_form_per_kind(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    await expect(page.get_by_role("status")).to_contain_text("Live")
    await expect(page.locator(".topbar .user")).to_have_text(user.username)
    offered = set(kinds.names())
    for kind, form in FORMS.items():
        if kind in offered:
            await expect(page.locator(form)).to_be_visible()
        else:
            await expect(page.locator(form)).to_be_hidden()
    await expect(page.locator("#jobs-empty")).to_have_text("No jobs yet. Start one with a form.")
    # Not staff: no link to Flower anywhere.
    await expect(page.get_by_role("link", name="Flower")).to_have_count(0)


async def test_a_countdown_fills_its_bar_to_100_percent_and_succeeds(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    job = await dashboard.start_countdown(steps=8, interval_ms=100)
    await dashboard.wait_status(job, "succeeded")
    await expect(job.locator(".badge")).to_have_text("Succeeded")
    await expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuetext", "100%, 8 of 8, Succeeded")
    await expect(job.locator(".job-percent")).to_have_text("100%")
    await expect(job.locator(".job-message")).to_have_text("Step 8 of 8")
    await expect(job.locator(".kv")).to_contain_text("steps")
    await expect(job.locator(".job-elapsed")).to_contain_text("took")
    await expect(job.get_by_role("button", name="Cancel countdown job")).to_be_hidden()
    await expect(job.get_by_role("button", name="Retry countdown job")).to_be_hidden()


async def test_cancelling_a_running_job_stops_it_and_retry_runs_it_again(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    job = await dashboard.start_countdown(steps=600, interval_ms=100)
    await dashboard.wait_status(job, "running")
    await dashboard.wait_progress_at_least(job, 1)
    await job.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(job, "cancelled")
    await expect(job.locator(".badge")).to_have_text("Cancelled")
    assert 0 < await dashboard.progress(job) < 100
    await expect(job.locator(".job-elapsed")).to_contain_text("took")

    await job.get_by_role("button", name="Retry countdown job").click()
    await dashboard.wait_status(job, "running")
    await expect(job.locator(".job-meta")).to_contain_text("attempt 2")
    await job.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(job, "cancelled")


async def test_a_failed_job_shows_its_error_message(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    job = await dashboard.start_countdown(steps=5, interval_ms=50, fail_at=3)
    await dashboard.wait_status(job, "failed")
    await expect(job.locator(".badge")).to_have_text("Failed")
    await expect(job.locator(".job-error")).to_have_text("Error: Failed at step 3, as requested by fail_at.")
    await expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "40")
    await expect(job.get_by_role("button", name="Retry countdown job")).to_be_visible()


async def test_invalid_params_show_beside_their_fields(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    form = page.locator("#form-countdown")
    await form.get_by_label("Steps").fill("0")
    await form.get_by_label("Interval (ms)").fill("-5")
    await form.get_by_role("button", name="Start countdown").click()

    steps = form.get_by_label("Steps")
    await expect(page.locator("#countdown-steps-error")).to_have_text("Input should be greater than or equal to 1")
    await expect(steps).to_have_attribute("aria-invalid", "true")
    await expect(steps).to_have_accessible_description("Input should be greater than or equal to 1")
    await expect(page.locator("#countdown-interval-ms-error")).to_have_text(
        "Input should be greater than or equal to 0"
    )
    await expect(steps).to_be_focused()
    await expect(dashboard.jobs).to_have_count(0)

    # Typing clears the field's error; a rule across fields shows beside the field it names.
    await steps.fill("3")
    await expect(page.locator("#countdown-steps-error")).to_be_hidden()
    await form.get_by_label("Interval (ms)").fill("0")
    await form.get_by_label("Fail at step").fill("9")
    await form.get_by_role("button", name="Start countdown").click()
    await expect(page.locator("#countdown-fail-at-error")).to_have_text("fail_at must not exceed steps")
    await expect(dashboard.jobs).to_have_count(0)


async def test_a_screenshot_shows_jobs_in_every_state(dashboard: Dashboard, user: User) -> None:
    """test-artifacts/dashboard.png: succeeded, failed, running, queued and cancelled jobs side by side."""
    await dashboard.log_in(user.username)
    succeeded = await dashboard.start_countdown(steps=4, interval_ms=50)
    await dashboard.wait_status(succeeded, "succeeded")
    failed = await dashboard.start_countdown(steps=6, interval_ms=50, fail_at=4)
    await dashboard.wait_status(failed, "failed")
    # The test worker runs two jobs at once: two long ones keep the next one queued.
    long_jobs = [await dashboard.start_countdown(steps=400, interval_ms=100) for _ in range(2)]
    for job in long_jobs:
        await dashboard.wait_status(job, "running")
        await dashboard.wait_progress_at_least(job, 5)
    cancelled = await dashboard.start_countdown(steps=50, interval_ms=100)
    await cancelled.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(cancelled, "cancelled")
    queued = await dashboard.start_countdown(steps=50, interval_ms=100)
    await dashboard.wait_status(queued, "queued")
    await expect(queued.locator(".job-elapsed")).to_contain_text("waiting")

    await dashboard.screenshot("dashboard.png")
    await dashboard.page.set_viewport_size({"width": 390, "height": 844})
    await dashboard.screenshot("dashboard-phone.png")

    # Free the worker for the tests that follow.
    for job in [queued, *long_jobs]:
        await job.get_by_role("button", name="Cancel countdown job").click()
        await dashboard.wait_status(job, "cancelled")
