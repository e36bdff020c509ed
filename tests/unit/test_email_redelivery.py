"""A task delivered again (its worker died) never sends a message twice: the exactly-once record in action."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from core.stack import free_port
from tasks import emails, runner, services
from tasks.models import DeliveryStatus, EmailDelivery, Job, JobStatus
from tests.smtp import USER_UNKNOWN, SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = ["ada@example.com", "bob@example.com", "cy@example.com"]


class WorkerCrash(BaseException):
    """Stands for SIGKILL: not an Exception, so the runner records nothing and the job stays running."""


def submitted(user: User) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": RECIPIENTS, "subject": "Hello", "body": "Hi."})
    return job


def run(job: Job) -> Job:
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def run_until_a_crash_in_the_window(job: Job, address: str) -> None:
    """Run the job; its worker dies once the server has `address`'s message and before that is recorded."""
    real_mark_sent = emails.mark_sent

    def mark_sent(job_id: str, to: str) -> None:
        if to == address:
            raise WorkerCrash()
        real_mark_sent(job_id, to)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emails, "mark_sent", mark_sent)
        with pytest.raises(WorkerCrash):
            run(job)


def test_a_redelivered_task_sends_to_nobody_twice_and_reports_the_unknown_one(user: User, smtp: SmtpServer) -> None:
    job = submitted(user)
    run_until_a_crash_in_the_window(job, "bob@example.com")
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING

    job = run(job)  # the broker hands the same task to another worker

    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"sent": 2, "failed": [{"to": "bob@example.com", "error": emails.UNKNOWN_OUTCOME}]}
    assert [message.rcpt_tos for message in smtp.received] == [[address] for address in RECIPIENTS]
    unknown = EmailDelivery.objects.get(job=job, recipient="bob@example.com")
    assert unknown.status == DeliveryStatus.SENDING


def test_a_redelivered_task_does_not_retry_a_refusal_of_its_own_attempt(user: User, smtp: SmtpServer) -> None:
    smtp.refuse("ada@example.com")
    job = submitted(user)
    run_until_a_crash_in_the_window(job, "cy@example.com")
    smtp.accept("ada@example.com")

    job = run(job)

    assert job.result is not None
    assert job.result["failed"] == [
        {"to": "ada@example.com", "error": USER_UNKNOWN},
        {"to": "cy@example.com", "error": emails.UNKNOWN_OUTCOME},
    ]
    assert smtp.refused == ["ada@example.com"]
    assert [message.rcpt_tos for message in smtp.received] == [["bob@example.com"], ["cy@example.com"]]


def test_a_task_redelivered_after_every_message_went_out_needs_no_mail_server(
    user: User, smtp: SmtpServer, settings: Settings
) -> None:
    job = run(submitted(user))
    # The worker died after the last delivery was recorded, before the job was marked done.
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, result=None, finished_at=None)
    settings.EMAIL_PORT = free_port()  # nothing listens there now

    job = run(job)

    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"sent": 3, "failed": []}
    assert len(smtp.received) == 3


def test_a_job_of_one_recipient_whose_outcome_is_unknown_ends_failed(user: User, smtp: SmtpServer) -> None:
    job, _ = services.submit(user, "r", "email.send", {"to": ["ada@example.com"], "subject": "Hi", "body": ""})
    run_until_a_crash_in_the_window(job, "ada@example.com")

    job = run(job)

    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "all_recipients_failed"
    assert emails.UNKNOWN_OUTCOME in job.error["message"]
    assert len(smtp.received) == 1


def test_a_recipient_claimed_by_a_concurrent_run_of_the_same_job_is_left_to_it(user: User, smtp: SmtpServer) -> None:
    job = submitted(user)
    job.refresh_from_db()

    def other_run_claims_bob(outcomes: list[emails.Outcome]) -> None:
        if len(outcomes) == 1:  # between our reading of the deliveries and our claim of bob
            EmailDelivery.objects.create(
                job=job, recipient="bob@example.com", status=DeliveryStatus.SENDING, attempt=1, message_id="<x>"
            )

    letter = emails.Letter(to=RECIPIENTS, subject="Hello", body="Hi.")
    outcomes = emails.deliver(str(job.pk), 1, letter, other_run_claims_bob)

    assert outcomes[1] == emails.Outcome("bob@example.com", sent=False, error=emails.UNKNOWN_OUTCOME)
    assert [message.rcpt_tos for message in smtp.received] == [["ada@example.com"], ["cy@example.com"]]
