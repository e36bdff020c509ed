"""Priority on RabbitMQ with real processes: jobs wait, submitted in mixed order with every priority, while
no worker runs; then one worker with one slot starts them one at a time: every high one first, then the
normal ones, then the low ones, each in the order submitted. The queues are declared with x-max-priority
by the service's processes and the messages carry priority_of's numbers (higher first on RabbitMQ).

The gateway sends a job's message after answering its submit, from a thread pool: two quick submits may
reach the broker in either order. So each submit here waits until its message is in the queue, to test the
broker's ordering and nothing else (test.table's queue, which no periodic task shares, counts them)."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks.models import Job
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job, wait_until
from tests.integration.idle import waiting_tasks

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
]

ORDER = ["low", "normal", "high", "low"] * 3  # 3 high, 3 normal, 6 low, mixed
QUEUE = "extra"


async def test_a_worker_with_one_slot_starts_high_then_normal_then_low(
    rabbitmq_fault_stack: FaultStack, user: User
) -> None:
    faults = rabbitmq_fault_stack
    for worker in [worker for worker in faults.workers if worker.poll() is None]:
        await asyncio.to_thread(faults.stop_worker, worker)
    submitted: list[tuple[str, str]] = []
    try:
        async with socket_of(user, faults.ws_url) as (socket, _):
            for count, name in enumerate(ORDER, start=1):
                submitted.append((await submit(socket, "test.table", {"rows": 1}, priority=name), name))
                await wait_until(partial(queued_in_broker, faults.broker, count), f"message {count} in the broker")
    finally:
        await asyncio.to_thread(faults.start_worker, 1)
    for job_id, _ in submitted:
        await wait_for_job(job_id, lambda job: job.is_finished)
    started = await database_sync_to_async(started_order)([job_id for job_id, _ in submitted])
    expected = [job_id for name in ("high", "normal", "low") for job_id, given in submitted if given == name]
    assert started == expected


def queued_in_broker(broker_url: str, count: int) -> bool:
    return waiting_tasks(broker_url).get(QUEUE) == count


def started_order(job_ids: list[str]) -> list[str]:
    jobs = Job.objects.filter(pk__in=job_ids).order_by("started_at")
    assert all(job.status == "succeeded" for job in jobs)
    return [str(job.pk) for job in jobs]
