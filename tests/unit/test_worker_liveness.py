"""A running job may be claimed again only when the process running it is gone; after
JOBS_MAX_DELIVERIES deaths it fails with worker_lost instead of being run again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tasks import liveness, services
from tasks.models import Job, JobStatus
from tests.conftest import Published

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]

HOST = liveness.this_worker().rpartition(":")[0]


@pytest.fixture
def live_pid() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def running_job(user: User, worker: str, deliveries: int = 1) -> Job:
    job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, worker=worker, deliveries=deliveries, heartbeat_at=timezone.now()
    )
    return Job.objects.get(pk=job.pk)


def test_a_process_on_this_host_is_gone_when_its_pid_is(live_pid: int, dead_pid: int) -> None:
    assert not liveness.is_gone(f"{HOST}:{live_pid}", None)
    assert liveness.is_gone(f"{HOST}:{dead_pid}", None)


def test_a_process_elsewhere_is_gone_when_its_heartbeat_is_older_than_the_lease() -> None:
    now = timezone.now()
    assert not liveness.is_gone("other-host:123", now - timedelta(seconds=5), now)
    assert liveness.is_gone("other-host:123", now - timedelta(seconds=31), now)
    assert liveness.is_gone("other-host:123", None, now)


def test_a_redelivered_task_cannot_claim_a_job_its_live_worker_still_runs(user: User, live_pid: int) -> None:
    job = running_job(user, f"{HOST}:{live_pid}")
    assert services.start(str(job.pk), job.celery_task_id) is None
    assert Job.objects.get(pk=job.pk).worker == f"{HOST}:{live_pid}"


def test_a_redelivered_task_claims_a_job_whose_worker_died(user: User, dead_pid: int, published: Published) -> None:
    job = running_job(user, f"{HOST}:{dead_pid}")
    claimed = services.start(str(job.pk), job.celery_task_id)
    assert claimed is not None
    assert claimed.deliveries == 2
    assert claimed.worker == liveness.this_worker()
    assert published.types()[-1] == "job.started"


def test_a_job_that_keeps_killing_its_worker_fails_with_worker_lost(
    user: User, dead_pid: int, published: Published
) -> None:
    job = running_job(user, f"{HOST}:{dead_pid}", deliveries=3)
    assert services.start(str(job.pk), job.celery_task_id) is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "worker_lost"
    assert published.types()[-1] == "job.failed"


def test_a_retry_starts_counting_deliveries_again(user: User, dead_pid: int) -> None:
    job = running_job(user, f"{HOST}:{dead_pid}", deliveries=3)
    services.start(str(job.pk), job.celery_task_id)
    retried = services.retry(user, str(job.pk))
    assert (retried.deliveries, retried.worker, retried.heartbeat_at) == (0, "", None)
