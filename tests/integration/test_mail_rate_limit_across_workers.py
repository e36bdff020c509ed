"""The mail rate limit with real processes: two workers on a stack of their own (their own Redis, the same
database, an SMTP sink) send one and a half windows' worth of messages in two email jobs; no window of
what the SMTP server received holds more than the limit (+10%), and the jobs say they were throttled.

Long form (make test-long): EMAIL_RATE_PER_MINUTE=60 and 90 messages, over a minute. Short form: the same
limiter in a 10-second window (EMAIL_RATE_LIMIT="20 per 10 seconds") and 30 messages."""

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
from tests.scale import scaled
from tests.smtp import SmtpServer, serving

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# (the variable and its value, the limit, the window in seconds)
RATE = scaled(("EMAIL_RATE_LIMIT", "20 per 10 seconds", 20, 10), ("EMAIL_RATE_PER_MINUTE", "60", 60, 60))
VARIABLE, VALUE, LIMIT, WINDOW = RATE
MESSAGES = LIMIT * 3 // 2


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
                **{VARIABLE: VALUE},
            )
            for n in range(2):
                with open(tmp_path / f"worker-{n}.log", "wb") as log:
                    command = stack.worker_command(f"mail-{n}", 1)
                    workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            yield redis_url, smtp
    finally:
        stack.stop([*workers, redis])


@pytest.mark.long
@pytest.mark.timeout(300)
def test_two_workers_keep_to_the_mail_rate_over_its_window(
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
                {"to": [f"r{n}.{part}@example.com" for n in range(MESSAGES // 2)], "subject": "Rate", "body": "Hi."},
            )[0]
            for part in range(2)
        ]
        deadline = time.monotonic() + 240
        stages = set()  # what the owner saw, polled as they would see it
        while len(smtp.received) < MESSAGES or not all(Job.objects.get(pk=job.pk).is_finished for job in jobs):
            assert time.monotonic() < deadline, f"{len(smtp.received)} of {MESSAGES} messages after 240 s"
            stages |= {
                (job.progress["stage"], job.progress["message"][:32])
                for job in Job.objects.filter(pk__in=[j.pk for j in jobs])
            }
            time.sleep(0.2)
    finally:
        app.close()
    times = sorted(message.at for message in smtp.received)
    busiest = max(sum(1 for t in times if start <= t < start + WINDOW) for start in times)
    assert busiest <= LIMIT * 1.1, f"{busiest} messages in one {WINDOW}-second window"
    assert times[-1] - times[0] >= WINDOW * 0.9, f"{MESSAGES} messages at {LIMIT} a window take more than one"
    assert {Job.objects.get(pk=job.pk).status for job in jobs} == {"succeeded"}
    assert len({tuple(message.rcpt_tos) for message in smtp.received}) == MESSAGES  # each once
    assert ("throttled", "throttled by the mail rate limit") in stages
