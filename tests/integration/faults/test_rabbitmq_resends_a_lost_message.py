"""RabbitMQ loses a queued job's message (the queue is purged, as an operator or a lost node would): the
reconciler, which can count RabbitMQ's queues but not list them, sees the job's queue empty and no worker
holding its task, and sends it again; the job runs once.

Restarting the broker, as the Redis test does, would break everyone else on the machine's shared server;
purging this stack's own vhost loses the message the same way."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks.models import JobEvent, JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job, wait_until
from tests.integration.idle import waiting_tasks
from tests.rabbitmq import purge

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
]

QUEUE = "extra"  # test.table's: no other test, and no periodic task, sends to it


async def test_a_job_whose_message_rabbitmq_lost_is_sent_again_and_runs_once(
    rabbitmq_fault_stack: FaultStack, user: User
) -> None:
    faults = rabbitmq_fault_stack
    for worker in [worker for worker in faults.workers if worker.poll() is None]:
        await asyncio.to_thread(faults.stop_worker, worker)  # nobody takes the message before it is lost
    try:
        async with socket_of(user, faults.ws_url) as (socket, _):
            job_id = await submit(socket, "test.table", {"rows": 3})
        await wait_until(lambda: waiting_tasks(faults.broker).get(QUEUE) == 1, "the job's message in its queue")
        assert await asyncio.to_thread(purge, faults.broker, QUEUE) == 1
    finally:
        await asyncio.to_thread(faults.start_worker, 1)
    job = await wait_for_job(job_id, lambda job: job.is_finished, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.deliveries == 1
    events = await database_sync_to_async(lambda: list(JobEvent.objects.filter(job_id=job_id).values_list("event")))()
    # Queued at submit, queued again when the reconciler sent the lost message again, then run once.
    assert [event for (event,) in events] == [
        "job.accepted",
        "job.queued",
        "job.queued",
        "job.started",
        "job.succeeded",
    ]
