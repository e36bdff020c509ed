"""email.send over a real SMTP server: one message per recipient, on one connection, with a fixed Message-ID."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import runner, services
from tasks.models import DeliveryStatus, EmailDelivery, Job, JobStatus
from tests.conftest import Published
from tests.smtp import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = ["ada@example.com", "bob@example.org", "cy@example.net"]


@pytest.fixture(autouse=True)
def sender(settings: Settings) -> None:
    settings.DEFAULT_FROM_EMAIL = "Jobs <jobs@example.com>"
    # Store and publish every report, so each recipient's progress can be seen.
    settings.JOBS_PROGRESS_INTERVAL = 0


def run_email_job(user: User, subject: str, body: str) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": RECIPIENTS, "subject": subject, "body": body})
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_each_recipient_gets_one_message_addressed_to_them_alone(user: User, smtp: SmtpServer) -> None:
    job = run_email_job(user, "Grüße from the team", "Hello,\nthe report is ready. ✓\n")
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"sent": 3, "failed": []}
    assert [message.rcpt_tos for message in smtp.received] == [[address] for address in RECIPIENTS]
    for index, (address, received) in enumerate(zip(RECIPIENTS, smtp.received, strict=True)):
        headers = received.message
        assert received.mail_from == "jobs@example.com"
        assert headers["From"] == "Jobs <jobs@example.com>"
        assert headers["To"] == address
        assert headers["Cc"] is None and headers["Bcc"] is None
        assert headers["Subject"] == "Grüße from the team"
        assert headers["Message-ID"] == f"<{job.pk}.{index}@example.com>"
        assert received.body == "Hello,\nthe report is ready. ✓\n"


def test_the_whole_job_uses_one_connection(user: User, smtp: SmtpServer) -> None:
    run_email_job(user, "Hello", "Hi.")
    assert len(smtp.received) == 3
    assert len({message.peer for message in smtp.received}) == 1


def test_every_delivery_is_recorded_as_sent_with_its_message_id(user: User, smtp: SmtpServer) -> None:
    job = run_email_job(user, "Hello", "Hi.")
    rows = EmailDelivery.objects.filter(job=job).order_by("created_at")
    assert [(row.recipient, row.status, row.attempt, row.error) for row in rows] == [
        (address, DeliveryStatus.SENT, 1, "") for address in RECIPIENTS
    ]
    assert [row.message_id for row in rows] == [message.message["Message-ID"] for message in smtp.received]


def test_progress_counts_recipients_as_they_are_sent(user: User, smtp: SmtpServer, published: Published) -> None:
    job = run_email_job(user, "Hello", "Hi.")
    progress = [message["progress"] for _, message in published if message["type"] == "job.progress"]
    assert [(p["current"], p["total"], p["stage"], p["message"]) for p in progress] == [
        (0, 3, "sending", "0 of 3 sent"),
        (1, 3, "sending", "1 of 3 sent"),
        (2, 3, "sending", "2 of 3 sent"),
        (3, 3, "sending", "3 of 3 sent"),
    ]
    assert job.progress["percent"] == 100.0


def test_the_local_file_sink_needs_no_server(user: User, settings: Settings, tmp_path: Path) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    job = run_email_job(user, "Hello", "Hi.")
    assert job.result == {"sent": 3, "failed": []}
    # One connection, so one file holding the three messages.
    (written,) = tmp_path.iterdir()
    text = written.read_text()
    assert [f"To: {address}" in text for address in RECIPIENTS] == [True, True, True]
