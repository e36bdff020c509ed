"""A recipient the mail server refuses fails alone; when every recipient fails, the job fails."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tasks import runner, services
from tasks.models import DeliveryStatus, EmailDelivery, Job, JobStatus
from tests.smtp import USER_UNKNOWN, SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def run_email_job(user: User, to: list[str]) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": to, "subject": "Hello", "body": "Hi."})
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_a_refused_recipient_fails_alone_and_the_others_still_get_the_message(user: User, smtp: SmtpServer) -> None:
    smtp.refuse("bob@example.com")
    job = run_email_job(user, ["ada@example.com", "bob@example.com", "cy@example.com"])
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"sent": 2, "failed": [{"to": "bob@example.com", "error": USER_UNKNOWN}]}
    assert [message.rcpt_tos for message in smtp.received] == [["ada@example.com"], ["cy@example.com"]]
    assert job.progress["message"] == "2 of 3 sent, 1 failed"
    refused = EmailDelivery.objects.get(job=job, recipient="bob@example.com")
    assert (refused.status, refused.error) == (DeliveryStatus.FAILED, USER_UNKNOWN)


def test_a_multi_line_reply_is_shown_on_one_line(user: User, smtp: SmtpServer) -> None:
    smtp.refuse("bob@example.com", "550-5.1.1 No such mailbox here.\r\n550 5.1.1 Check the address.")
    job = run_email_job(user, ["ada@example.com", "bob@example.com"])
    assert job.result is not None
    assert job.result["failed"] == [
        {"to": "bob@example.com", "error": "550 5.1.1 No such mailbox here. 5.1.1 Check the address."}
    ]


def test_a_job_whose_every_recipient_is_refused_ends_failed(user: User, smtp: SmtpServer) -> None:
    smtp.refuse("ada@example.com")
    smtp.refuse("bob@example.com", "553 5.7.1 Sender not allowed to this mailbox")
    job = run_email_job(user, ["ada@example.com", "bob@example.com"])
    assert job.status == JobStatus.FAILED
    assert job.error == {
        "code": "all_recipients_failed",
        "message": f"Nothing was sent: all 2 recipients failed. The first, ada@example.com: {USER_UNKNOWN}",
    }
    assert smtp.received == []
    assert smtp.refused == ["ada@example.com", "bob@example.com"]
