"""The pipeline with RabbitMQ as the Celery broker (a vhost of its own; the channel layer stays on Redis):
a job submitted over a real WebSocket to Daphne runs on a real worker fed by RabbitMQ, and its owner's
socket sees it queued, started, each step and succeeded, in seq order."""

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


async def test_a_job_submitted_over_the_socket_runs_through_rabbitmq_to_success(
    rabbitmq_fault_stack: FaultStack, user: User
) -> None:
    assert rabbitmq_fault_stack.env["CELERY_BROKER_URL"].startswith("amqp://")
    async with socket_of(user, rabbitmq_fault_stack.ws_url) as (socket, _):
        job_id = await submit(socket, "demo.countdown", {"steps": 4, "interval_ms": 50})
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "job.succeeded":
            message = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if message.get("job_id", message.get("job", {}).get("id")) == job_id:
                events.append(message)
    types = [event["type"] for event in events]
    # Progress frames are coalesced (JOBS_PROGRESS_INTERVAL): the last step may come with job.succeeded.
    assert types[:2] == ["job.queued", "job.started"] and types[-1] == "job.succeeded", types
    assert set(types[2:-1]) == {"job.progress"}
    steps = [event["progress"]["current"] for event in events[2:-1]]
    assert steps == sorted(set(steps)) and steps[0] >= 1, steps
    seqs = [event.get("seq", event.get("job", {}).get("seq")) for event in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    job = await wait_for_job(job_id, lambda job: job.is_finished)
    assert (job.status, job.result, job.deliveries) == (JobStatus.SUCCEEDED, {"steps": 4}, 1)
