"""Priority with real processes: 20 jobs wait, submitted in mixed order with every priority, while no
worker runs; then one worker with one slot starts them one at a time: every high one first, then the
normal ones, then the low ones, each in the order submitted."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import broker
from tasks.models import Job
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

ORDER = ["low", "normal", "high", "low"] * 5  # 5 high, 5 normal, 10 low, mixed


async def test_a_worker_with_one_slot_starts_high_then_normal_then_low(
    fault_stack: FaultStack, user: User, settings: Settings
) -> None:
    # Every worker that still runs (earlier tests leave the ones they killed in the list).
    for worker in [worker for worker in fault_stack.workers if worker.poll() is None]:
        await asyncio.to_thread(fault_stack.stop_worker, worker)
    submitted: list[tuple[str, str]] = []
    try:
        settings.CELERY_BROKER_URL = fault_stack.broker  # for broker.held(), in this process
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            for name in ORDER:
                submitted.append((job_id := await submit(socket, "demo.countdown", {"steps": 1}, priority=name), name))
                # A task leaves for the broker just after its job.accepted: the worker must find all 20 there.
                task_id = await database_sync_to_async(task_of)(job_id)
                await wait_until(partial(waiting_in_broker, task_id), f"the task of job {len(submitted)} in the broker")
    finally:
        await asyncio.to_thread(fault_stack.start_worker, 1)
    for job_id, _ in submitted:
        await wait_for_job(job_id, lambda job: job.is_finished)
    started = await database_sync_to_async(started_order)([job_id for job_id, _ in submitted])
    expected = [job_id for name in ("high", "normal", "low") for job_id, given in submitted if given == name]
    assert started == expected


def task_of(job_id: str) -> str:
    return Job.objects.values_list("celery_task_id", flat=True).get(pk=job_id)


def waiting_in_broker(task_id: str) -> bool:
    held = broker.held()
    return held is not None and task_id in held.waiting


def started_order(job_ids: list[str]) -> list[str]:
    jobs = Job.objects.filter(pk__in=job_ids).order_by("started_at")
    assert all(job.status == "succeeded" for job in jobs)
    return [str(job.pk) for job in jobs]
