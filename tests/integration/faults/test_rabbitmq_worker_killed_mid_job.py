"""A worker SIGKILLed mid-job with RabbitMQ as the broker: RabbitMQ puts the unacknowledged message back
in the queue as soon as the dead worker's connection closes, and the reconciler finds the job's process
gone and queues it again under a new task id. Whichever arrives first runs the job again; the other finds
nothing to claim. The new worker has two slots, so two copies would have room to run at once: they must not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
]


async def test_the_job_of_a_killed_worker_runs_again_and_never_twice_at_once(
    rabbitmq_fault_stack: FaultStack, user: User
) -> None:
    faults = rabbitmq_fault_stack
    async with socket_of(user, faults.ws_url) as (socket, _):
        job_id = await submit(socket, "demo.countdown", {"steps": 20, "interval_ms": 100})
        await wait_for_job(job_id, lambda job: job.progress["current"] >= 3)
        # In threads: the socket must keep answering Daphne's pings meanwhile.
        await asyncio.to_thread(faults.kill_worker, faults.workers[-1])
        await asyncio.to_thread(faults.start_worker, 2)
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "job.succeeded":
            message = json.loads(await asyncio.wait_for(socket.recv(), 60))
            if message.get("job_id", message.get("job", {}).get("id")) == job_id:
                events.append(message)
    job = await wait_for_job(job_id, lambda job: job.is_finished)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result == {"steps": 20}
    assert job.deliveries == 2, "run once more after the kill, not once per message that asked for it"
    types = [event["type"] for event in events]
    assert types.count("job.started") == 2, types
    last_start = len(types) - 1 - types[::-1].index("job.started")
    steps = [event["progress"]["current"] for event in events[last_start:] if event["type"] == "job.progress"]
    assert steps == sorted(set(steps)), f"two runs interleaved their progress: {steps}"
