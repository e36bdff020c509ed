"""email.send through EMAIL_URL=smtp+tls://user:pass@host:port: STARTTLS, a verified certificate, then AUTH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import runner, services
from tasks.models import Job, JobStatus
from tests.smtp import Certificate, SmtpServer, self_signed, serving, use_email_url

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = ("jobs@example.com", "p@ss word")
TO = ["ada@example.com", "bob@example.org"]


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return self_signed(tmp_path)


@pytest.fixture
def server(certificate: Certificate, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A server that insists on STARTTLS and a login; EMAIL_URL points at it, credentials percent-encoded."""
    with serving(login=LOGIN, tls=certificate) as smtp:
        url = f"smtp+tls://jobs%40example.com:p%40ss%20word@{smtp.host}:{smtp.port}"
        use_email_url(settings, monkeypatch, url)
        yield smtp


def run_email_job(user: User) -> Job:
    job, _ = services.submit(user, "r", "email.send", {"to": TO, "subject": "Over TLS", "body": "Hi.\n"})
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_mail_goes_out_over_starttls_after_a_login(
    user: User, server: SmtpServer, certificate: Certificate, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL) == (True, False)
    # The client verifies the server's certificate against OpenSSL's default
    # trust store; SSL_CERT_FILE is how an operator adds a private CA to it.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.certfile))
    job = run_email_job(user)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result == {"sent": 2, "failed": []}
    assert [(message.rcpt_tos, message.tls, message.login) for message in server.received] == [
        ([address], True, LOGIN[0]) for address in TO
    ]
    assert server.received[0].body == "Hi.\n"


def test_a_certificate_the_client_does_not_trust_fails_the_job_and_sends_nothing(
    user: User, server: SmtpServer
) -> None:
    job = run_email_job(user)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "smtp_unavailable"
    assert "TLS handshake" in job.error["message"]
    assert server.received == []
