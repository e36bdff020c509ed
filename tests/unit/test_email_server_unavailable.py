"""A mail server that cannot be reached fails the job with smtp_unavailable and marks no recipient."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from core.stack import free_port
from tasks import runner, services
from tasks.models import EmailDelivery, Job, JobStatus
from tests.smtp import SmtpServer, serving, smtp_fixture, use_smtp  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

TO = ["ada@example.com", "bob@example.com"]


def submitted(user: User) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": TO, "subject": "Hello", "body": "Hi."})
    return job


def run(job: Job) -> Job:
    job.refresh_from_db()
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_an_unreachable_server_fails_the_job_and_a_retry_sends_to_everyone(
    user: User, smtp: SmtpServer, settings: Settings
) -> None:
    settings.EMAIL_PORT = free_port()  # nothing listens there
    job = run(submitted(user))
    assert job.status == JobStatus.FAILED
    assert job.error == {
        "code": "smtp_unavailable",
        "message": "The mail server is unavailable: it could not be reached (Connection refused). 0 of 2 "
        "recipients have been sent the message; retry the job later to send it to the rest.",
    }
    assert not EmailDelivery.objects.filter(job=job).exists()
    settings.EMAIL_PORT = smtp.port

    services.retry(user, str(job.pk))
    job = run(job)

    assert job.result == {"sent": 2, "failed": []}
    assert sorted(address for message in smtp.received for address in message.rcpt_tos) == TO


def test_a_refused_login_fails_the_job_with_the_servers_reply(user: User, settings: Settings) -> None:
    with serving(login=("jobs", "right password")) as server:
        use_smtp(settings, server.host, server.port)
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "jobs", "wrong password"
        job = run(submitted(user))
        assert server.received == []
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "smtp_unavailable"
    assert "it refused our login (535 5.7.8 Authentication credentials invalid)" in job.error["message"]
    assert not EmailDelivery.objects.filter(job=job).exists()


def test_the_right_login_sends(user: User, settings: Settings) -> None:
    with serving(login=("jobs", "right password")) as server:
        use_smtp(settings, server.host, server.port)
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "jobs", "right password"
        job = run(submitted(user))
        assert len(server.received) == 2
    assert job.result == {"sent": 2, "failed": []}
