"""In a real browser: a failed email job whose worker lost the server's answer for one recipient offers to
resend to that recipient, in the list and on the job's page; its confirmation says that they may receive the
message twice; dismissed, nothing is sent; accepted, the job is retried with `resend_unknown`."""

from __future__ import annotations

import re
import uuid

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from playwright.async_api import Dialog, expect

from tasks import history
from tasks.models import DeliveryStatus, EmailDelivery, Job, JobStatus
from tests.integration.browser import BROWSER_TESTS, JOB_TIMEOUT, Dashboard
from tests.smtp import SmtpServer

pytestmark = BROWSER_TESTS
pytest_plugins = ["tests.integration.browser"]

ADDRESS = "unknown-outcome@example.com"


def failed_with_one_unknown_outcome(owner: User) -> str:
    """The email job as its worker left it when the connection broke waiting for the answer to the final dot."""
    job_id, request_id = uuid.uuid4(), uuid.uuid4().hex
    params = {"to": [ADDRESS], "subject": "Invoice", "body": "Attached."}
    job = Job.objects.create(
        id=job_id, owner=owner, request_id=request_id, kind="email.send", params=params, seq=4,
        status=JobStatus.FAILED, unknown_outcome=1, search_text=history.search_text(job_id, request_id, params),
        error={"code": "smtp_unavailable", "message": "The mail server is unavailable: it closed the connection."},
    )  # fmt: skip
    EmailDelivery.objects.create(
        job=job, recipient=ADDRESS, status=DeliveryStatus.SENDING, attempt=1, message_id=f"<{job_id}.0@example.com>"
    )
    return str(job_id)


async def test_the_resend_of_unknown_outcomes_states_the_risk_and_happens_only_once_confirmed(
    dashboard: Dashboard, user: User, smtp_server: SmtpServer
) -> None:
    job_id = await database_sync_to_async(failed_with_one_unknown_outcome)(user)
    sent_before = len(smtp_server.to(ADDRESS))  # the server serves every test of the session
    await dashboard.log_in(user.username)
    job = dashboard.job(job_id)
    resend = job.get_by_role("button", name="Resend the 1 recipient whose outcome is unknown")
    await expect(resend).to_be_visible()
    await expect(job.get_by_role("button", name="Retry email job")).to_be_visible()
    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    dashboard.page.once("dialog", dismiss)
    await resend.click()
    await expect(resend).to_be_enabled()
    assert "may receive it twice" in questions[0], questions
    await dashboard.page.wait_for_timeout(500)
    await expect(job).to_have_attribute("data-status", "failed")  # nothing was sent

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    dashboard.page.once("dialog", accept)
    await resend.click()
    await dashboard.wait_status(job, "succeeded")
    await expect(job.locator(".job-meta")).to_contain_text("attempt 2")
    await expect(resend).to_be_hidden()
    assert len(smtp_server.to(ADDRESS)) == sent_before + 1
    delivery = await database_sync_to_async(EmailDelivery.objects.get)(job_id=job_id)
    assert (delivery.status, delivery.attempt) == (DeliveryStatus.SENT, 2)


async def test_the_job_s_page_offers_the_same_resend_with_the_same_warning(
    dashboard: Dashboard, user: User, smtp_server: SmtpServer
) -> None:
    job_id = await database_sync_to_async(failed_with_one_unknown_outcome)(user)
    sent_before = len(smtp_server.to(ADDRESS))
    await dashboard.log_in(user.username)
    page = dashboard.page
    await dashboard.job(job_id).get_by_role("link", name=re.compile("^Details")).click()
    resend = page.get_by_role("button", name="Resend the 1 recipient whose outcome is unknown")
    await expect(resend).to_be_visible()
    questions: list[str] = []

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await resend.click()
    await expect(page.locator("#job-badge")).to_have_text("Succeeded", timeout=JOB_TIMEOUT)
    assert "may receive it twice" in questions[0], questions
    await expect(resend).to_be_hidden()
    assert len(smtp_server.to(ADDRESS)) == sent_before + 1
