"""A socket's hello reads the owner's unfinished jobs and their latest finished ones without reading the
rest of their history: its work is the same for an owner with 30 finished jobs and one with 3,000.

Measured on SQLite, the embedded default, in virtual-machine steps (sqlite3's progress handler), which do
not depend on the machine's speed. A `NOT IN` of the finished states, or an ORDER BY on the unfinished
part, made SQLite walk every job the owner ever had on every connect (20 ms at 90,000 jobs). PostgreSQL
chooses its plans from statistics a test table does not have; there the figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from tasks import services
from tasks.models import FINISHED, Job, JobStatus
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="counts SQLite's virtual-machine steps"),
]

_request_ids = itertools.count()


def _owner_with(finished: int) -> User:
    owner = UserFactory.create()
    start = timezone.now()
    statuses = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.QUEUED] + [FINISHED[n % 3] for n in range(finished)]
    Job.objects.bulk_create(
        Job(
            id=uuid.uuid4(),
            owner=owner,
            kind="demo.countdown",
            params={},
            request_id=f"history-{next(_request_ids)}",
            status=status,
            created_at=start - timedelta(seconds=n),
        )
        for n, status in enumerate(statuses)
    )
    return owner


def _steps(owner: User, limit: int) -> tuple[int, list[Any]]:
    """SQLite's virtual-machine steps for the owner's snapshot, in hundreds, and the snapshot."""
    counted = 0

    def count() -> int:
        nonlocal counted
        counted += 1
        return 0  # go on

    connection.ensure_connection()
    connection.connection.set_progress_handler(count, 100)
    try:
        jobs = services.snapshot(owner, limit)
    finally:
        connection.connection.set_progress_handler(None, 100)
    return counted, jobs


def test_the_snapshot_reads_as_much_for_a_long_history_as_for_a_short_one() -> None:
    short, long = _owner_with(finished=30), _owner_with(finished=3_000)
    services.snapshot(short, 20)  # compiled once per process (patches.prepared): not counted below

    short_steps, short_jobs = _steps(short, 20)
    long_steps, long_jobs = _steps(long, 20)

    assert [job.status for job in short_jobs] == [job.status for job in long_jobs]
    assert len(long_jobs) == 3 + 20
    # The same jobs come back for both; reading the long history whole takes ~100 times the steps.
    assert long_steps <= 2 * short_steps + 5, (short_steps, long_steps)
