"""Celery tasks of job kinds: one thin task per registered kind, made by TasksConfig.ready.

Each takes the job id, never the params (Flower and the broker would show
them), and delegates to the runner. Each is named after its kind
(Kind.task_name) and carries the kind's time limits. Periodic tasks are in
tasks.periodic.
"""

from __future__ import annotations

from typing import Any

from celery import Task, current_app, shared_task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections
from kombu import Queue

from tasks import kinds
from tasks.kinds.base import Kind
from tasks.runner import run_job


def register_kind_tasks() -> None:
    """A Celery task for every kind in the registry, and its queue (every process: workers run them,
    Flower names them). A worker started without -Q serves every queue declared here."""
    for kind in kinds.all_kinds():
        _kind_task(kind)
    names = [current_app.conf.task_default_queue, *kinds.queues()]
    current_app.conf.task_queues = [Queue(name) for name in dict.fromkeys(names)]


def reuse_connections() -> None:
    """Keep each worker process's database connection across tasks, closing it only when it is past
    DATABASE_CONN_MAX_AGE or broken, as Django does around each request.

    Celery's Django fix-up closes every connection before and after each task unless
    CELERY_DB_REUSE_MAX is set (core.settings sets it): a new connection per job cost a connect,
    and on SQLite its PRAGMAs, on every job (docs/benchmarks.md).
    """
    task_prerun.connect(_close_old_connections, weak=False, dispatch_uid="tasks.close_old_connections.pre")
    task_postrun.connect(_close_old_connections, weak=False, dispatch_uid="tasks.close_old_connections.post")


def _close_old_connections(**kwargs: Any) -> None:
    close_old_connections()


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
