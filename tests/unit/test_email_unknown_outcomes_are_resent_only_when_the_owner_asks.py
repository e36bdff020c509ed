"""A recipient whose send was cut off between the final dot and the server's answer has an unknown outcome.
A plain retry never sends to them again; a retry with `resend_unknown` (the owner's choice) sends to them
and to the refused and untried ones, each once in that attempt, and a later retry never repeats a send
that the flagged attempt made."""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User

from gateway import frames
from tasks import emails, runner, services
from tasks.models import DeliveryStatus, EmailDelivery, Job, JobStatus
from tests.smtp import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

TO = ["cy@example.com", "ada@example.com", "bob@example.com"]


def submitted(user: User) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": TO, "subject": "Hello", "body": "Hi."})
    return job


def run(job: Job) -> Job:
    job.refresh_from_db()
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


@contextmanager
def reply_lost_after_the_dot_to(address: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server takes `address`'s message, then the connection breaks before its answer arrives."""
    real_send = smtplib.SMTP.send
    current: list[str] = []

    def send(self: smtplib.SMTP, data: Any) -> Any:
        if isinstance(data, str) and data.lower().startswith("rcpt to:"):
            current[:] = [data]
        real_send(self, data)
        if data == b".\r\n" and address in current[0]:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    with monkeypatch.context() as patch:
        patch.setattr(smtplib.SMTP, "send", send)
        yield


def sends_to(smtp: SmtpServer) -> Callable[[], list[str]]:
    """The recipients of the messages the server received since this was called, in order."""
    before = len(smtp.received)
    return lambda: [address for message in smtp.received[before:] for address in message.rcpt_tos]


def failed_with_ada_unknown(user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> Job:
    """cy refused, ada's answer lost (the server took her message), bob never tried: the job failed."""
    smtp.refuse("cy@example.com")
    with reply_lost_after_the_dot_to("ada@example.com", monkeypatch):
        job = run(submitted(user))
    smtp.accept("cy@example.com")
    assert job.status == JobStatus.FAILED and job.error is not None and job.error["code"] == "smtp_unavailable"
    assert EmailDelivery.objects.get(job=job, recipient="ada@example.com").status == DeliveryStatus.SENDING
    assert len(smtp.to("ada@example.com")) == 1
    return job


def test_the_failed_job_tells_clients_how_many_outcomes_are_unknown(
    user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = failed_with_ada_unknown(user, smtp, monkeypatch)
    assert job.unknown_outcome == 1
    assert frames.job_payload(job)["unknown_outcome"] == 1


def test_a_retry_without_the_flag_never_resends_an_unknown_outcome(
    user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = failed_with_ada_unknown(user, smtp, monkeypatch)
    sent = sends_to(smtp)

    services.retry(user, str(job.pk))
    job = run(job)

    assert sent() == ["cy@example.com", "bob@example.com"]
    assert job.result == {"sent": 2, "failed": [{"to": "ada@example.com", "error": emails.UNKNOWN_OUTCOME}]}
    assert job.unknown_outcome == 1


def test_a_retry_with_the_flag_sends_once_to_the_unknown_the_refused_and_the_untried(
    user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = failed_with_ada_unknown(user, smtp, monkeypatch)
    sent = sends_to(smtp)

    retried = services.retry(user, str(job.pk), resend_unknown=True)
    assert retried.unknown_outcome is None  # not counted until this attempt ends
    assert retried.events.get(seq=retried.seq).note == "retried, resending unknown outcomes"
    job = run(job)

    assert sent() == TO  # each once, in order
    assert (job.status, job.attempt, job.result) == (JobStatus.SUCCEEDED, 2, {"sent": 3, "failed": []})
    assert job.unknown_outcome == 0
    assert set(EmailDelivery.objects.filter(job=job).values_list("status", "attempt")) == {(DeliveryStatus.SENT, 2)}


def test_a_second_flagged_retry_sends_nothing_twice_that_the_first_one_sent(
    user: User, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = failed_with_ada_unknown(user, smtp, monkeypatch)
    services.retry(user, str(job.pk), resend_unknown=True)
    sent = sends_to(smtp)
    # The flagged attempt sends to cy and ada, then bob's answer is lost in turn.
    with reply_lost_after_the_dot_to("bob@example.com", monkeypatch):
        job = run(job)
    assert sent() == TO
    assert (job.status, job.unknown_outcome) == (JobStatus.FAILED, 1)
    sent = sends_to(smtp)

    services.retry(user, str(job.pk), resend_unknown=True)
    job = run(job)

    assert sent() == ["bob@example.com"]
    assert (job.status, job.attempt, job.result) == (JobStatus.SUCCEEDED, 3, {"sent": 3, "failed": []})


def test_the_flag_changes_nothing_for_a_kind_without_unknown_outcomes(user: User) -> None:
    job, _ = services.submit(user, "c", "demo.countdown", {"steps": 1, "interval_ms": 0})
    services.cancel(user, str(job.pk))
    assert Job.objects.get(pk=job.pk).unknown_outcome is None

    retried = services.retry(user, str(job.pk), resend_unknown=True)

    assert (retried.status, retried.attempt) == (JobStatus.QUEUED, 2)
    assert retried.events.get(seq=retried.seq).note == "retried"


def test_a_flagged_retry_of_a_batch_passes_the_flag_to_its_email_jobs(user: User) -> None:
    params = {"to": ["ada@example.com"], "subject": "Hello", "body": "Hi."}
    batch, _ = services.submit_batch(user, "b", "News", "parallel", [("email.send", params)])
    child = Job.objects.get(parent=batch)
    assert services.start(str(child.pk), child.celery_task_id) is not None
    EmailDelivery.objects.create(
        job=child, recipient="ada@example.com", status=DeliveryStatus.SENDING, attempt=1, message_id="<m>"
    )
    services.fail(str(child.pk), "smtp_unavailable", "The mail server is unavailable.")
    assert Job.objects.get(pk=child.pk).unknown_outcome == 1
    assert Job.objects.get(pk=batch.pk).status == JobStatus.FAILED

    services.retry(user, str(batch.pk), resend_unknown=True)

    child.refresh_from_db()
    assert (child.status, child.attempt, child.unknown_outcome) == (JobStatus.QUEUED, 2, None)
    assert child.events.get(seq=child.seq).note == "its batch was retried, resending unknown outcomes"
    released = EmailDelivery.objects.get(job=child)
    assert (released.status, released.error) == (DeliveryStatus.FAILED, emails.RELEASED)
