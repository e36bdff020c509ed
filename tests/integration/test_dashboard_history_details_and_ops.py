"""Past the last twenty jobs, in a real browser: the history paged by scrolling through 250 jobs, each filter
and the search (kept in the URL), a job's page following the live log of a running job, a bulk retry after
its confirmation, and the operations view for staff (numbers and chart that move as jobs run), refused to
everyone else."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from playwright.async_api import expect

from tasks import history
from tasks.models import Job
from tests.factories import UserFactory
from tests.integration.browser import BROWSER_TESTS, JOB_TIMEOUT, Dashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

NOW = datetime.now(UTC).replace(microsecond=0)


def make_jobs(owner: User, count: int, **fields: str) -> list[Job]:
    """`count` finished jobs, one a minute apart going back from an hour ago, searchable like submitted ones."""
    jobs = []
    batch = uuid.uuid4().hex[:6]
    for n in range(count):
        job_id = uuid.uuid4()
        params = {"steps": n + 1}
        request_id = f"{batch}-{n}"
        job = Job(
            id=job_id, owner=owner, request_id=request_id, kind="demo.countdown", params=params,
            status=fields.get("status", "succeeded"), search_text=history.search_text(job_id, request_id, params),
        )  # fmt: skip
        jobs.append(job)
    Job.objects.bulk_create(jobs)
    for n, job in enumerate(jobs):
        Job.objects.filter(pk=job.pk).update(created_at=NOW - timedelta(hours=1, minutes=n))
    return jobs


async def test_scrolling_pages_through_every_job_once(dashboard: Dashboard, user: User) -> None:
    await database_sync_to_async(make_jobs)(user, 250)
    await dashboard.log_in(user.username)
    jobs = dashboard.jobs
    await expect(jobs).to_have_count(50)  # the first page (the hello's 20 are among them)
    for _ in range(20):
        if await jobs.count() == 250:
            break
        await dashboard.page.locator(".history-more").scroll_into_view_if_needed()
        await dashboard.page.wait_for_timeout(200)
    await expect(jobs).to_have_count(250)
    ids = await jobs.evaluate_all("items => items.map(item => item.dataset.jobId)")
    assert len(set(ids)) == 250
    steps = await jobs.locator(".job-params").all_inner_texts()
    assert [text.split(" ")[0] for text in steps[:3]] == ["1", "2", "3"]  # newest first
    await expect(dashboard.page.locator(".history-more")).to_have_text("")


async def test_each_filter_and_the_search_narrow_the_list_and_live_in_the_url(dashboard: Dashboard, user: User) -> None:
    def make() -> None:
        make_jobs(user, 3)
        failed = make_jobs(user, 2, status="failed")
        Job.objects.filter(pk__in=[job.pk for job in failed]).update(kind="email.send")
        Job.objects.filter(pk=failed[0].pk).update(search_text=f"{failed[0].pk} invoice-run april invoices")

    await database_sync_to_async(make)()
    await dashboard.log_in(user.username)
    page = dashboard.page
    filters = page.locator(".history-filters")
    await expect(dashboard.jobs).to_have_count(5)

    await filters.get_by_label("failed").check()
    await expect(dashboard.jobs).to_have_count(2)
    await expect(page).to_have_url(re.compile(r"\?status=failed$"))

    await filters.get_by_label("failed").uncheck()
    await filters.get_by_label("Kind").select_option("email.send")
    await expect(dashboard.jobs).to_have_count(2)
    await expect(page).to_have_url(re.compile(r"kind=email.send"))
    await dashboard.screenshot("history.png", full_page=False)

    await filters.get_by_label("Kind").select_option("")
    await filters.get_by_placeholder("Search id, request id, params…").fill("APRIL")
    await filters.get_by_role("button", name="Search").click()
    await expect(dashboard.jobs).to_have_count(1)
    await expect(page).to_have_url(re.compile(r"q=APRIL"))

    # A bookmarked view: the same filter from the URL alone.
    await page.goto("/?status=succeeded")
    await expect(page.locator(".history-filters").get_by_label("succeeded")).to_be_checked()
    await expect(dashboard.jobs).to_have_count(3)

    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    await page.goto(f"/?after={tomorrow}")
    await expect(page.locator("#jobs-empty")).to_have_text("No jobs match this view.")


async def test_a_bulk_retry_says_how_many_then_retries_them(dashboard: Dashboard, user: User) -> None:
    await database_sync_to_async(make_jobs)(user, 3, status="failed")
    await dashboard.log_in(user.username)
    page = dashboard.page
    await expect(dashboard.jobs).to_have_count(3)
    await page.get_by_role("button", name="Retry all failed").click()
    dialog = page.locator(".bulk-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".bulk-question")).to_have_text(
        "Retry 3 failed or cancelled jobs of the 3 this view shows?"
    )
    await dashboard.screenshot("history-bulk.png", full_page=False)
    await dialog.get_by_role("button", name="Retry 3 jobs").click()
    await expect(page.locator(".bulk-status")).to_have_text("3 jobs queued again.")
    for job in await dashboard.jobs.all():
        await dashboard.wait_status(job, "succeeded")  # retried by the real worker
    attempts = await database_sync_to_async(lambda: sorted(Job.objects.values_list("attempt", flat=True)))()
    assert attempts == [2, 2, 2]


async def test_the_jobs_page_follows_the_live_log_of_a_running_job(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    form = page.locator("#form-countdown")
    await form.get_by_label("Steps").fill("40")
    await form.get_by_label("Interval (ms)").fill("150")
    await form.get_by_label("Log every 10%").check()
    await form.get_by_role("button", name="Start countdown").click()
    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "running")
    await job.get_by_role("link", name=re.compile("^Details")).click()
    await expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))
    await expect(page.locator("#logs-state")).to_have_text("Following live…")
    lines = page.locator("#job-logs .log-line")
    await expect(lines.first).to_contain_text("Reached step 4 of 40.")
    seen_running = await lines.count()
    await expect(page.locator("#job-badge")).to_have_text("Running")
    await expect(page.locator("#job-eta")).to_contain_text("left")
    await expect(page.locator("#job-badge")).to_have_text("Succeeded", timeout=JOB_TIMEOUT)
    await expect(lines).to_have_count(10)
    assert seen_running < 10, "the lines came while it ran, not all at the end"
    await expect(lines.last).to_contain_text("Reached step 40 of 40.")
    events = await page.locator("#job-timeline li strong").all_inner_texts()
    assert events == ["accepted", "queued", "started", "succeeded"]
    await expect(page.locator("#job-params")).to_contain_text("log_progress")
    await dashboard.screenshot("job-detail.png")


async def test_the_operations_view_moves_as_jobs_run(dashboard: Dashboard) -> None:
    staff = await database_sync_to_async(UserFactory.create)(is_staff=True)
    owner = await database_sync_to_async(UserFactory.create)()
    await database_sync_to_async(make_jobs)(owner, 2)
    await dashboard.log_in(staff.username)
    page = dashboard.page
    await page.get_by_role("link", name="Operations").click()
    await expect(page).to_have_url(re.compile(r"/ops/$"))
    await expect(page.locator("#ops-updated")).to_contain_text("Updated")
    await expect(page.locator("#ops-chart canvas")).to_have_count(1)  # uPlot drew it
    await expect(page.locator("#ops-chart")).to_have_attribute("data-points", "60")
    await expect(page.locator("#ops-workers")).not_to_have_text("0")
    await expect(page.locator('#ops-queues tr[data-queue="default"]')).to_be_visible()
    await expect(dashboard.jobs).to_have_count(2)  # everyone's jobs
    await expect(dashboard.jobs.first.locator(".job-owner")).to_have_text(owner.username)

    before = await page.locator("#ops-chart").get_attribute("data-finished")
    other = await dashboard.another_tab()
    await other.page.goto("/")
    await other.wait_live()
    countdown = await other.start_countdown(steps=2)
    await other.wait_status(countdown, "succeeded")
    row = page.locator('#ops-kinds tr[data-kind="demo.countdown"] td[data-status="succeeded"]')
    await expect(row).to_have_text("1", timeout=JOB_TIMEOUT)  # finished in the last hour: the one just run
    await expect(page.locator("#ops-chart")).not_to_have_attribute("data-finished", before or "0")
    await dashboard.screenshot("ops.png")


async def test_the_operations_view_is_refused_to_users_who_are_not_staff(dashboard: Dashboard, user: User) -> None:
    anonymous = await dashboard.page.goto("/ops/")
    assert anonymous is not None
    await expect(dashboard.page).to_have_url(re.compile(r"/accounts/login/\?next=/ops/$"))
    await dashboard.log_in(user.username)
    await expect(dashboard.page.get_by_role("link", name="Operations")).to_have_count(0)
    refused = await dashboard.page.goto("/ops/")
    assert refused is not None and refused.status == 403
    dashboard.console_errors.allow("Failed to load resource: the server responded with a status of 403")
