"""Celery tasks: one thin task per job kind. Each takes the job id, never the
params (Flower and the broker would show them), and delegates to the runner.
Each is named after its kind (KIND.task_name) and carries the kind's time limits."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from tasks import reconciler
from tasks.kinds import countdown, crash, email_send, file_process
from tasks.kinds.base import Kind
from tasks.runner import run_job

logger = logging.getLogger(__name__)


def _kind_task(kind: Kind) -> Any:
    def run(self: Task, job_id: str) -> None:  # type: ignore[type-arg]
        task_id = self.request.id
        assert task_id is not None, "a task run by a worker always has an id"
        run_job(job_id, task_id)

    run.__name__ = run.__qualname__ = kind.task_name.replace(".", "_")
    decorate = shared_task(
        bind=True, name=kind.task_name, soft_time_limit=kind.soft_time_limit, time_limit=kind.time_limit
    )
    return decorate(run)


demo_countdown = _kind_task(countdown.KIND)
send_email = _kind_task(email_send.KIND)
process_file = _kind_task(file_process.KIND)
# Registered always, so a worker knows it; submitting it needs JOBS_TEST_KINDS.
test_crash = _kind_task(crash.KIND)


@shared_task(name="jobs.reconcile", soft_time_limit=120, time_limit=150, ignore_result=True)
def reconcile() -> None:
    """Periodic (Celery beat): requeue jobs whose worker is gone, resend tasks the broker lost."""
    outcome = reconciler.reconcile()
    if outcome.requeued_lost or outcome.resent:
        logger.warning("reconciled: %s", outcome)
