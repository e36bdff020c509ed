"""Helpers for batch tests: make a batch, and play a worker's part for its children."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from tasks import services
from tasks.models import Batch, Job


def make_batch(user: User, n: int, mode: str = "parallel", request_id: str = "b-1", **params: Any) -> Job:
    jobs = [("demo.countdown", {"steps": 1, **params}) for _ in range(n)]
    batch, created = services.submit_batch(user, request_id, "A batch", mode, jobs)
    assert created
    return batch


def children(batch: Job) -> list[Job]:
    return list(Job.objects.filter(parent=batch).order_by("position"))


def run(child: Job, result: dict[str, Any] | None = None, fail: bool = False) -> None:
    """What the child's task does: claim it, then succeed or fail."""
    child.refresh_from_db()
    assert services.start(str(child.pk), child.celery_task_id) is not None
    if fail:
        services.fail(str(child.pk), "demo_failure", "It failed.")
    else:
        services.succeed(str(child.pk), result or {"ok": True}, None)


def counts(batch: Job) -> dict[str, int]:
    return Batch.objects.get(pk=batch.pk).counts()
