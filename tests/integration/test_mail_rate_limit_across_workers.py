"""The mail rate limit with real processes: two workers on a stack of their own (their own Redis, the same
database, an SMTP sink) with EMAIL_RATE_PER_MINUTE=60 send 90 messages of two email jobs; no 60-second
window of what the SMTP server received holds more than 60 (+10%), and the jobs say they were throttled."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.db import connection

from core import stack
from tasks import kinds, services, transitions
from tasks.models import Job
from tests.integration.conftest import database_url, service_env
from tests.smtp import SmtpServer, serving

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PER_MINUTE = 60


@pytest.fixture
def limited_stack(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[tuple[str, SmtpServer]]:
    """Two workers (one process each) on a Redis of their own, sending to an SMTP sink of their own."""
    redis_url = f"redis://127.0.0.1:{stack.free_port()}/0"
    redis = stack.start_redis(redis_url, tmp_path_factory.mktemp("mail-rate-redis"))
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with serving() as smtp:
            env = service_env(
                database_url(connection.settings_dict),
                redis_url,
                tmp_path_factory,
                EMAIL_URL=smtp.url,
                EMAIL_RATE_PER_MINUTE=str(PER_MINUTE),
            )
            for n in range(2):
                with open(tmp_path / f"worker-{n}.log", "wb") as log:
                    command = stack.worker_command(f"mail-{n}", 1)
                    workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            yield redis_url, smtp
    finally:
        stack.stop([*workers, redis])


@pytest.mark.timeout(300)
def test_two_workers_keep_to_the_mail_rate_over_a_minute(
    limited_stack: tuple[str, SmtpServer], user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_url, smtp = limited_stack
    app = Celery(broker=redis_url, set_as_current=False)
    kind = kinds.get("email.send")
    monkeypatch.setattr(
        transitions,
        "send_task",
        lambda job: app.send_task(kind.task_name, args=[str(job.pk)], task_id=job.celery_task_id, queue=kind.queue),
    )
    try:
        jobs = [
            services.submit(
                user,
                uuid.uuid4().hex,
                "email.send",
                {"to": [f"r{n}.{part}@example.com" for n in range(45)], "subject": "Rate", "body": "One a second."},
            )[0]
            for part in range(2)
        ]
        deadline = time.monotonic() + 240
        stages = set()  # what the owner saw, polled as they would see it
        while len(smtp.received) < 90 or not all(Job.objects.get(pk=job.pk).is_finished for job in jobs):
            assert time.monotonic() < deadline, f"{len(smtp.received)} of 90 messages after 240 s"
            stages |= {
                (job.progress["stage"], job.progress["message"][:32])
                for job in Job.objects.filter(pk__in=[j.pk for j in jobs])
            }
            time.sleep(0.2)
    finally:
        app.close()
    times = sorted(message.at for message in smtp.received)
    busiest = max(sum(1 for t in times if start <= t < start + 60) for start in times)
    assert busiest <= PER_MINUTE * 1.1, f"{busiest} messages in one minute"
    assert times[-1] - times[0] >= 55, "90 messages at 60 a minute take more than a minute"
    assert {Job.objects.get(pk=job.pk).status for job in jobs} == {"succeeded"}
    assert len({tuple(message.rcpt_tos) for message in smtp.received}) == 90  # each once
    assert ("throttled", "throttled by the mail rate limit") in stages
