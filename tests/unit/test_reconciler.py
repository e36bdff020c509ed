"""The reconciler requeues jobs whose worker is gone and resends tasks the broker lost."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import redis
from celery import Celery
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from tasks import broker, liveness, reconciler, services
from tasks.models import Job, JobStatus
from tests.conftest import Published
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]

HOST = liveness.this_worker().rpartition(":")[0]


@pytest.fixture
def dead_worker() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{HOST}:{process.pid}"


@pytest.fixture
def broker_holds(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The task ids waiting in the broker's queues (tests add to it)."""
    held: set[str] = set()
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(held), frozenset()))
    return held


def job_in(user: User, status: str, **fields: object) -> Job:
    job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1})
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    return Job.objects.get(pk=job.pk)


def test_a_running_job_whose_worker_died_is_queued_again_with_a_new_task(
    user: User, dead_worker: str, sent_tasks: SentTasks, published: Published, broker_holds: set[str]
) -> None:
    job = job_in(user, JobStatus.RUNNING, worker=dead_worker, deliveries=1)
    assert reconciler.reconcile().requeued_lost == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.worker == ""
    assert sent_tasks[-1]["task_id"] == job.celery_task_id != ""
    assert published.types()[-1] == "job.queued"


def test_a_running_job_with_a_live_worker_is_left_alone(
    user: User, broker_holds: set[str], sent_tasks: SentTasks
) -> None:
    job = job_in(user, JobStatus.RUNNING, worker=liveness.this_worker().replace(HOST, "elsewhere"))
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert reconciler.reconcile().requeued_lost == 0
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_a_lost_job_out_of_deliveries_fails_with_worker_lost(
    user: User, dead_worker: str, broker_holds: set[str]
) -> None:
    job = job_in(user, JobStatus.RUNNING, worker=dead_worker, deliveries=3)
    reconciler.reconcile()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "worker_lost"


def test_a_queued_job_whose_task_the_broker_lost_is_sent_again(
    user: User, settings: Settings, sent_tasks: SentTasks, broker_holds: set[str], published: Published
) -> None:
    settings.JOBS_REQUEUE_AFTER_SECONDS = 1
    lost = job_in(user, JobStatus.QUEUED, updated_at=timezone.now() - timedelta(seconds=5))
    waiting = job_in(user, JobStatus.QUEUED, updated_at=timezone.now() - timedelta(seconds=5), attempt=2)
    broker_holds.add(waiting.celery_task_id)
    fresh = job_in(user, JobStatus.QUEUED, attempt=3)  # just queued: give the broker time
    sent_tasks.clear()
    assert reconciler.reconcile().resent == 1
    assert [task["task_id"] for task in sent_tasks] == [lost.celery_task_id]
    assert published.types()[-1] == "job.queued"
    assert fresh.celery_task_id not in {task["task_id"] for task in sent_tasks}


def test_it_reads_task_ids_from_a_real_redis_broker(redis_server: str, settings: Settings) -> None:
    url = f"{redis_server}/2"
    settings.CELERY_BROKER_URL = url
    app = Celery(broker=url, set_as_current=False)
    try:
        app.send_task("demo.countdown", args=["x"], task_id="task-in-queue", queue="default")
        # Every queue a kind names is read, not only the default one.
        app.send_task("file.process", args=["y"], task_id="task-in-files", queue="files")
        assert broker.held() == broker.Held(frozenset({"task-in-queue", "task-in-files"}), frozenset())
    finally:
        client = redis.Redis.from_url(url)
        client.flushdb()  # the session's private Redis, its own database
        client.close()
        app.close()


def test_a_job_that_cannot_be_repaired_does_not_stop_the_others(
    user: User, dead_worker: str, broker_holds: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = job_in(user, JobStatus.RUNNING, worker=dead_worker, deliveries=1)
    second = job_in(user, JobStatus.RUNNING, worker=dead_worker, deliveries=1)
    requeue = services.requeue_lost

    def broken_for_first(job_id: str) -> Job | None:
        if job_id == str(first.pk):
            raise RuntimeError("a job the code can no longer run")
        return requeue(job_id)

    monkeypatch.setattr(services, "requeue_lost", broken_for_first)
    assert reconciler.reconcile().requeued_lost == 1
    assert Job.objects.get(pk=second.pk).status == JobStatus.QUEUED
