"""A worker SIGKILLed while it holds a delivered task it has not started: the job is not left queued
until the broker's visibility timeout (41 minutes by default), the reconciler sends it again. On
RabbitMQ the broker itself hands the message to the next worker as soon as the dead one's connection
closes, and the reconciler leaves it alone.

To hold a task without starting it, the worker is handed one with an ETA (as it is handed the next
child of a batch, between fetching its message and claiming the job, for a few milliseconds); the ETA
is short, so the message RabbitMQ hands out again runs soon, and far enough to kill the worker first."""

from __future__ import annotations

import time
import uuid

import pytest
from celery import Celery
from django.contrib.auth.models import User

from tasks import kinds, services, transitions
from tasks.models import Job, JobStatus
from tests.integration.faults.conftest import FaultStack

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

ETA_SECONDS = 12


def held_by_workers(app: Celery, task_id: str) -> bool:
    replies = app.control.inspect(timeout=1).query_task(task_id) or {}
    return any(task_id in tasks for tasks in replies.values())


def test_a_queued_job_whose_task_died_with_its_worker_runs_on_another(
    each_broker_stack: FaultStack, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault_stack = each_broker_stack
    app = fault_stack.client_app()
    kind = kinds.get("demo.countdown")

    def send_for_later(job: Job) -> None:
        app.send_task(
            kind.task_name, args=[str(job.pk)], task_id=job.celery_task_id, queue=kind.queue, countdown=ETA_SECONDS
        )

    try:
        monkeypatch.setattr(transitions, "send_task", send_for_later)
        job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1})
        held = job.celery_task_id
        deadline = time.monotonic() + 30
        while not held_by_workers(app, held):
            assert time.monotonic() < deadline, "no worker took the task"
        fault_stack.kill_worker(fault_stack.workers[-1])
        monkeypatch.undo()  # the worker's own sends are its own; the test's are done
        fault_stack.start_worker()

        deadline = time.monotonic() + 60
        while not (job := Job.objects.get(pk=job.pk)).is_finished:
            assert time.monotonic() < deadline, f"the job is still {job.status}, its task {job.celery_task_id}"
            time.sleep(0.2)
    finally:
        app.close()
    assert job.status == JobStatus.SUCCEEDED, job.error
    if fault_stack.broker_url:
        assert job.celery_task_id == held, "RabbitMQ handed out the same message; nothing was sent again"
    else:
        assert job.celery_task_id != held, "sent again under a new task id, so the old message runs nothing"
    assert job.deliveries == 1
