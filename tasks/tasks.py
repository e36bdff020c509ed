"""Celery tasks: one thin task per job kind. Each takes the job id, never the
params (Flower and the broker would show them), and delegates to the runner."""

from __future__ import annotations

from celery import Task, shared_task

from tasks.kinds import countdown, email_send, file_process
from tasks.runner import run_job


@shared_task(
    bind=True,
    name=countdown.KIND.task_name,
    soft_time_limit=countdown.KIND.soft_time_limit,
    time_limit=countdown.KIND.time_limit,
)
def demo_countdown(self: Task, job_id: str) -> None:  # type: ignore[type-arg]
    task_id = self.request.id
    assert task_id is not None, "a task run by a worker always has an id"
    run_job(job_id, task_id)


@shared_task(
    bind=True,
    name=email_send.KIND.task_name,
    soft_time_limit=email_send.KIND.soft_time_limit,
    time_limit=email_send.KIND.time_limit,
)
def send_email(self: Task, job_id: str) -> None:  # type: ignore[type-arg]
    task_id = self.request.id
    assert task_id is not None, "a task run by a worker always has an id"
    run_job(job_id, task_id)


@shared_task(
    bind=True,
    name=file_process.KIND.task_name,
    soft_time_limit=file_process.KIND.soft_time_limit,
    time_limit=file_process.KIND.time_limit,
)
def process_file(self: Task, job_id: str) -> None:  # type: ignore[type-arg]
    task_id = self.request.id
    assert task_id is not None, "a task run by a worker always has an id"
    run_job(job_id, task_id)
