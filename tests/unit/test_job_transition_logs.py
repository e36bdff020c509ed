"""Every job state change is logged once, by tasks.services, with structured fields."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from tasks import liveness, services
from tasks.models import Job, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]

FIELDS = ("event", "job_id", "kind", "user_id", "status", "seq")


class Lines(list[logging.LogRecord]):
    """What tasks.services logs during the test."""

    def events(self) -> list[str]:
        return [record.event for record in self]  # type: ignore[attr-defined]


class ServiceLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = Lines()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record)


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("tasks.services")
    handler = ServiceLog()
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: getattr(record, key) for key in (*FIELDS, "code") if hasattr(record, key)}


def submit(user: User) -> Job:
    job, created = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 3})
    assert created
    return job


def test_a_job_that_succeeds_logs_one_line_per_transition_with_its_fields(user: User, lines: Lines) -> None:
    job = submit(user)
    services.start(str(job.pk), job.celery_task_id)
    services.save_progress(str(job.pk), {"current": 1, "total": 3})  # progress is not a state change
    services.succeed(str(job.pk), {"steps": 3}, None)
    job.refresh_from_db()
    common = {"job_id": str(job.pk), "kind": "demo.countdown", "user_id": user.pk}
    assert [fields(record) for record in lines] == [
        {**common, "event": "job.queued", "status": "queued", "seq": 2},
        {**common, "event": "job.started", "status": "running", "seq": 3},
        {**common, "event": "job.succeeded", "status": "succeeded", "seq": job.seq},
    ]
    assert all(record.levelno == logging.INFO for record in lines)
    assert (
        lines[1].getMessage()
        == f"job {job.pk} running: kind=demo.countdown user_id={user.pk} seq=3 attempt=1 deliveries=1"
    )


def test_a_failure_logs_its_code(user: User, lines: Lines) -> None:
    job = submit(user)
    services.start(str(job.pk), job.celery_task_id)
    services.fail(str(job.pk), "demo_failure", "It failed at step 2.")
    assert lines.events() == ["job.queued", "job.started", "job.failed"]
    assert fields(lines[-1])["code"] == "demo_failure"
    assert "code=demo_failure" in lines[-1].getMessage()
    assert not any(hasattr(record, "code") for record in lines[:-1])


def test_cancel_and_retry_each_log_one_line_saying_why(user: User, lines: Lines) -> None:
    job = submit(user)
    services.cancel(user, str(job.pk))
    services.retry(user, str(job.pk))
    assert [(record.event, record.status) for record in lines] == [  # type: ignore[attr-defined]
        ("job.queued", "queued"),
        ("job.cancelled", "cancelled"),
        ("job.queued", "queued"),
    ]
    assert lines[1].getMessage().endswith("(by its owner)")
    assert lines[2].getMessage().endswith("attempt=2 deliveries=0 (retried)")


def test_a_job_requeued_after_its_worker_died_logs_a_warning(user: User, lines: Lines) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    dead = f"{liveness.this_worker().rpartition(':')[0]}:{process.pid}"
    job = submit(user)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, worker=dead, deliveries=1)
    assert services.requeue_lost(str(job.pk)) is not None
    requeued = lines[-1]
    assert (requeued.event, requeued.levelno) == ("job.queued", logging.WARNING)  # type: ignore[attr-defined]
    assert requeued.getMessage().endswith("(its worker is gone)")
    assert len(lines) == 2


def test_a_transition_rolled_back_with_its_transaction_logs_nothing(user: User, lines: Lines) -> None:
    job = submit(user)
    services.start(str(job.pk), job.celery_task_id)

    def succeed_then_fail() -> None:
        with transaction.atomic():
            services.succeed(str(job.pk), {}, None)
            raise RuntimeError("the surrounding work failed")

    with pytest.raises(RuntimeError):
        succeed_then_fail()
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert lines.events() == ["job.queued", "job.started"]
