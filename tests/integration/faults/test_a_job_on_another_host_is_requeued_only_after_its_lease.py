"""A job run by a worker on another host (JOBS_WORKER_HOST differs from the reconciler's, so its process
cannot be asked by pid): while the worker beats, the reconciler leaves the job alone however many leases
it runs for; once the worker is frozen (SIGSTOP: its beats stop, its process still exists), the reconciler
requeues the job, and not before its last heartbeat is older than JOBS_LEASE_SECONDS. The job then runs
again on a worker of this host and succeeds.

The stack's own workers (this host) stop consuming the job's queue for the test, so that only the
"other host" takes it; they keep running the reconciler (Celery beat, every second)."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User

from tasks.models import Job, JobStatus
from tests.integration.faults.conftest import FAST_RECOVERY, FaultStack
from tests.integration.faults.helpers import queue_left_alone, socket_of, submit, wait_for_job, worker_of_own

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

KIND, QUEUE = "test.table", "extra"  # the test kind on a queue of its own
OTHER_HOST = "another-host"
LEASE = timedelta(seconds=float(FAST_RECOVERY["JOBS_LEASE_SECONDS"]))


async def last_beat_before_requeue(job_id: str) -> tuple[datetime, Job]:
    """Poll the job until it is no longer running: the latest heartbeat seen meanwhile, and the job then."""
    latest: datetime | None = None

    def seen(job: Job) -> bool:
        nonlocal latest
        if job.status == JobStatus.RUNNING and job.heartbeat_at is not None:
            latest = max(latest or job.heartbeat_at, job.heartbeat_at)
        return job.status != JobStatus.RUNNING

    job = await wait_for_job(job_id, seen, timeout=60)
    assert latest is not None
    return latest, job


async def test_a_job_on_another_host_is_requeued_after_its_lease_and_not_while_it_beats(
    fault_stack: FaultStack, user: User
) -> None:
    log = fault_stack.logs / "other-host-worker.log"
    with (
        queue_left_alone(fault_stack.redis_url, QUEUE),
        worker_of_own(
            fault_stack.env, log, "other-host-worker", QUEUE, fault_stack.worker_answers, JOBS_WORKER_HOST=OTHER_HOST
        ) as worker,
    ):
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            # Long enough to beat for three leases. Should the SIGSTOP below land inside one of the job's
            # short transactions, the job's row stays locked until the server ends the frozen session
            # (DATABASE_IDLE_IN_TRANSACTION_SECONDS), later than the lease; the asserts hold either way
            # (test_reconciler_passes_a_row_a_frozen_worker_locks.py tests that case on its own).
            job_id = await submit(socket, KIND, {"rows": 24, "interval_ms": 500})
        running = await wait_for_job(job_id, lambda job: job.status == JobStatus.RUNNING)
        assert running.worker.startswith(f"{OTHER_HOST}:")
        assert running.started_at is not None

        # Beating: still its first run after three leases, with the reconciler passing every second.
        def beat_for_three_leases(job: Job) -> bool:
            assert job.heartbeat_at is not None and running.started_at is not None
            return job.status != JobStatus.RUNNING or job.heartbeat_at - running.started_at > 3 * LEASE

        beating = await wait_for_job(job_id, beat_for_three_leases)
        assert (beating.status, beating.worker, beating.deliveries) == (JobStatus.RUNNING, running.worker, 1)

        os.killpg(worker.pid, signal.SIGSTOP)  # alive, but silent
        last_beat, requeued = await last_beat_before_requeue(job_id)
        assert requeued.status == JobStatus.QUEUED, requeued.status  # no worker of this host takes it yet
        assert (requeued.worker, requeued.heartbeat_at) == ("", None)
        assert requeued.updated_at - last_beat > LEASE, "requeued before its lease ran out"
    finished = await wait_for_job(job_id, lambda job: job.is_finished, timeout=120)
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.deliveries == 2  # the frozen worker's run, then one on this host
