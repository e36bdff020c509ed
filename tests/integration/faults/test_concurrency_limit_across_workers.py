"""A per-kind concurrency limit with real processes: `test.table=2` (the fault stack's JOBS_CONCURRENCY)
holds with four worker processes on two workers and 20 jobs, sampled all along; a worker SIGKILLed while
its job holds a slot gives the slot back (its lease runs out, the reconciler requeues the job) and a held
job takes it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks.models import Job
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job
from tests.scale import scaled

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

KIND = "test.table"
LIMIT = 2
QUICK_ROWS = scaled(5, 10)  # the 20 contending jobs last 0.5 s each in the short form, 1 s in the long


def executing() -> list[Job]:
    """The jobs of the kind really running now: status running, in a process that is alive."""
    running = Job.objects.filter(kind=KIND, status="running").only("id", "worker")
    return [job for job in running if _alive(int(job.worker.rpartition(":")[2]))]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


class Sampler:
    """Counts the executing jobs of the kind every 20 ms in a thread, for as long as it runs."""

    def __init__(self) -> None:
        self.most = 0
        self.samples = 0
        self.stopped = False

    def run(self) -> None:
        while not self.stopped:
            self.most = max(self.most, len(executing()))
            self.samples += 1
            time.sleep(0.02)


@pytest.mark.long
@pytest.mark.timeout(300)
async def test_the_limit_holds_across_workers_and_a_killed_workers_slot_comes_back(
    fault_stack: FaultStack, user: User
) -> None:
    extra = await asyncio.to_thread(fault_stack.start_worker, 3)  # four processes in all
    sampler = Sampler()
    sampling = asyncio.ensure_future(database_sync_to_async(sampler.run, thread_sensitive=False)())
    try:
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            quick = [await submit(socket, KIND, {"rows": QUICK_ROWS, "interval_ms": 100}) for _ in range(20)]
            for job_id in quick:
                await wait_for_job(job_id, lambda job: job.is_finished, timeout=120)
            assert sampler.most == LIMIT, f"at most {sampler.most} ran at once over {sampler.samples} samples"

            slow = [await submit(socket, KIND, {"rows": 40, "interval_ms": 100}) for _ in range(LIMIT + 1)]
            await until(lambda: len(executing()) == LIMIT and held_of(slow) is not None, "two running, one held")
            held = await database_sync_to_async(held_of)(slow)
            assert held is not None and held.progress["message"] == f"waiting: {LIMIT} {KIND} jobs already running"
            victim = (await database_sync_to_async(executing)())[0]
            pid = int(victim.worker.rpartition(":")[2])
            owner = next(w for w in fault_stack.workers if pid in fault_stack.pool_processes(w))
            await asyncio.to_thread(fault_stack.kill_worker, owner)
            fault_stack.workers.remove(owner)  # the tests after use `workers[-1]`: a worker that runs
            await wait_for_job(str(held.pk), lambda job: job.status == "running", timeout=60)
            for job_id in slow:
                await wait_for_job(job_id, lambda job: job.is_finished, timeout=120)
    finally:
        sampler.stopped = True
        await sampling
        if extra in fault_stack.workers:
            await asyncio.to_thread(fault_stack.stop_worker, extra)
        if not any(worker.poll() is None for worker in fault_stack.workers):
            await asyncio.to_thread(fault_stack.start_worker)
    assert sampler.most == LIMIT, f"{sampler.most} ran at once"
    statuses = await database_sync_to_async(lambda: {Job.objects.get(pk=j).status for j in slow})()
    assert statuses == {"succeeded"}


def held_of(job_ids: list[str]) -> Job | None:
    return Job.objects.filter(pk__in=job_ids, status="queued").exclude(hold="").first()


async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait until `condition`, which reads the database, holds (read in a thread, off the loop)."""
    deadline = time.monotonic() + timeout
    while not await database_sync_to_async(condition)():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
