"""Redis stops while a job reports progress: the publisher drops events quickly and the job goes on;
Redis starts again empty, the job finishes once, and clients that stayed or reconnect see it succeeded.
A socket that stayed open through the outage is told to resync (4012): it may have missed events."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import User

from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import SyncedClient, running, socket_of, submit, wait_for_job, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


async def test_redis_stopped_while_a_job_reports_progress_the_job_finishes(fault_stack: FaultStack, user: User) -> None:
    client = await SyncedClient.of(user, fault_stack.ws_url)
    async with running([client]):
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            job_id = await submit(socket, "demo.countdown", {"steps": 80, "interval_ms": 100})
        running_job = await wait_for_job(job_id, lambda job: job.progress["current"] >= 3)
        await asyncio.to_thread(fault_stack.stop_redis)
        try:
            # Redis is down: the job keeps storing progress, its publisher drops the events.
            reached = running_job.progress["current"] + 10
            down = await wait_for_job(job_id, lambda job: job.is_finished or job.progress["current"] >= reached)
            assert down.status == JobStatus.RUNNING
        finally:
            await asyncio.to_thread(fault_stack.start_redis)  # whatever happened: the tests after need Redis
        job = await wait_for_job(job_id, lambda job: job.is_finished, timeout=120)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.result == {"steps": 80}
        assert job.deliveries == 1  # it went on: never run again
        await wait_until(lambda: client.shows([job_id]), "the connected client to see it succeeded", timeout=60)
    assert 4012 in client.close_codes, client.close_codes
    async with socket_of(user, fault_stack.ws_url) as (_, hello):
        assert {job["id"]: job["status"] for job in hello["jobs"]}[job_id] == "succeeded"
