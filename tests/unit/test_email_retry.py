"""Retrying an email.send job (attempt + 1) sends only to recipients not yet served."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks import emails, runner, services
from tasks.models import DeliveryStatus, EmailDelivery, Job, JobStatus
from tests.smtp import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

CLOSING = "421 4.3.2 Service shutting down, try later"


def submitted(user: User, to: list[str]) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": to, "subject": "Hello", "body": "Hi."})
    return job


def run(job: Job) -> Job:
    job.refresh_from_db()
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_a_retry_sends_to_the_refused_and_the_untried_but_never_to_the_sent(user: User, smtp: SmtpServer) -> None:
    to = ["ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com"]
    smtp.refuse("bob@example.com")
    smtp.refuse("cy@example.com", CLOSING)  # the server hangs up: dee is never tried
    job = run(submitted(user, to))
    assert job.status == JobStatus.FAILED
    assert job.error == {
        "code": "smtp_unavailable",
        "message": f"The mail server is unavailable: it answered {CLOSING}. 1 of 4 recipients have been sent "
        "the message; retry the job later to send it to the rest.",
    }
    assert not EmailDelivery.objects.filter(job=job, recipient="dee@example.com").exists()
    smtp.accept("bob@example.com")
    smtp.accept("cy@example.com")

    services.retry(user, str(job.pk))
    job = run(job)

    assert (job.status, job.attempt) == (JobStatus.SUCCEEDED, 2)
    assert job.result == {"sent": 4, "failed": []}
    assert sorted(address for message in smtp.received for address in message.rcpt_tos) == to
    retried = EmailDelivery.objects.get(job=job, recipient="bob@example.com")
    assert (retried.status, retried.attempt, retried.error) == (DeliveryStatus.SENT, 2, "")
    assert EmailDelivery.objects.get(job=job, recipient="ada@example.com").attempt == 1


def test_a_retry_keeps_each_recipients_message_id(user: User, smtp: SmtpServer) -> None:
    smtp.refuse("bob@example.com")
    job = run(submitted(user, ["bob@example.com"]))
    refused_id = EmailDelivery.objects.get(job=job).message_id
    smtp.accept("bob@example.com")
    services.retry(user, str(job.pk))
    run(job)
    assert [message.message["Message-ID"] for message in smtp.received] == [refused_id]


def test_a_retry_never_resends_a_message_whose_outcome_is_unknown(
    user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submitted(user, ["ada@example.com", "bob@example.com"])

    real_send = smtplib.SMTP.send

    def send_then_lose_the_reply(self: smtplib.SMTP, data: Any) -> Any:
        real_send(self, data)
        if data == b".\r\n":  # the line that makes the server deliver
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    # The server takes ada's message, then the connection breaks before its reply arrives.
    with monkeypatch.context() as patch:
        patch.setattr(smtplib.SMTP, "send", send_then_lose_the_reply)
        job = run(job)
    assert job.error is not None and job.error["code"] == "smtp_unavailable"
    assert "it closed the connection" in job.error["message"]
    assert EmailDelivery.objects.get(job=job, recipient="ada@example.com").status == DeliveryStatus.SENDING

    services.retry(user, str(job.pk))
    job = run(job)

    assert job.result == {"sent": 1, "failed": [{"to": "ada@example.com", "error": emails.UNKNOWN_OUTCOME}]}
    assert [message.rcpt_tos for message in smtp.received] == [["ada@example.com"], ["bob@example.com"]]
