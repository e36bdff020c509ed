"""A batch under faults: a worker SIGKILLed in the middle of its children (500 in the long form, 200 in the
short: tests/scale.py), and Redis restarted empty with children queued. Every child ends exactly once, the
counters equal a recount, and the batch ends."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks.models import Job, JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import batch_is_exact, socket_of, submit_batch, wait_for_job
from tests.scale import scaled

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

CHILDREN = scaled(200, 500)


def countdowns(n: int, steps: int, interval_ms: int) -> list[dict[str, object]]:
    return [{"kind": "demo.countdown", "params": {"steps": steps, "interval_ms": interval_ms}}] * n


# 500 children take about 40 s on an idle machine (200: 18 s); the waits inside allow 360 s on a busy one.
@pytest.mark.long
@pytest.mark.timeout(420)
async def test_a_worker_sigkilled_in_the_middle_of_a_batch_loses_and_repeats_no_child(
    fault_stack: FaultStack, user: User
) -> None:
    async with socket_of(user, fault_stack.ws_url) as (socket, _):
        batch_id = await submit_batch(socket, "parallel", countdowns(CHILDREN, 2, 5), "crash")
        # The batch's stored progress counts its finished children.
        midway = await wait_for_job(batch_id, lambda job: job.progress["current"] >= CHILDREN // 5, timeout=120)
        # In threads: the socket must keep answering Daphne's pings meanwhile.
        await asyncio.to_thread(fault_stack.kill_worker, fault_stack.workers[-1])
        await asyncio.to_thread(fault_stack.start_worker)
        assert not midway.is_finished, "the batch ended before the worker was killed"
        batch = await wait_for_job(batch_id, lambda job: job.is_finished, timeout=240)
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    assert batch.progress["current"] == CHILDREN
    await database_sync_to_async(batch_is_exact)(batch_id)
    succeeded = await database_sync_to_async(
        Job.objects.filter(parent_id=uuid.UUID(batch_id), status="succeeded").count
    )()
    assert succeeded == CHILDREN


async def test_redis_restarted_empty_with_children_queued_finishes_the_batch_exactly(
    fault_stack: FaultStack, user: User
) -> None:
    async with socket_of(user, fault_stack.ws_url) as (socket, _):
        batch_id = await submit_batch(socket, "parallel", countdowns(40, 3, 50), "redis")
    await wait_for_job(batch_id, lambda job: job.status == JobStatus.RUNNING)
    await asyncio.to_thread(fault_stack.stop_redis)
    await asyncio.to_thread(fault_stack.start_redis)  # empty: the queued children's tasks are gone
    batch = await wait_for_job(batch_id, lambda job: job.is_finished, timeout=180)
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    await database_sync_to_async(batch_is_exact)(batch_id)
