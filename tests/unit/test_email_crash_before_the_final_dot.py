"""The recipient is claimed only just before the message's final dot: a worker that dies earlier in
the SMTP conversation leaves nothing recorded, so the message is sent when the job runs again."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks import runner, services
from tasks.models import EmailDelivery, Job, JobStatus
from tests.smtp import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def run(job: Job) -> Job:
    job.refresh_from_db()
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_a_connection_lost_mid_message_leaves_no_claim_and_a_retry_sends_once(
    user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, _ = services.submit(user, "r", "email.send", {"to": ["ada@example.com"], "subject": "Hi", "body": "Hello."})
    real_send = smtplib.SMTP.send

    def lose_the_connection_during_the_text(self: smtplib.SMTP, data: Any) -> Any:
        if isinstance(data, bytes) and b"Subject: Hi" in data:  # the message text, before its final dot
            self.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return real_send(self, data)

    with monkeypatch.context() as patch:
        patch.setattr(smtplib.SMTP, "send", lose_the_connection_during_the_text)
        job = run(job)
    assert job.status == JobStatus.FAILED
    assert not EmailDelivery.objects.filter(job=job).exists()  # nothing claimed, nothing unknown
    assert smtp.received == []  # the server discarded the partial message

    services.retry(user, str(job.pk))
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"sent": 1, "failed": []}
    assert len(smtp.to("ada@example.com")) == 1
