"""Redis is not the source of truth: stopped with jobs queued and started empty, every job still finishes,
with no process restarted by hand, and a client that reconnects sees every final state."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import User

from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


async def test_redis_restarted_empty_with_ten_jobs_queued_loses_none(fault_stack: FaultStack, user: User) -> None:
    async with socket_of(user, fault_stack.ws_url) as (socket, _):
        job_ids = [await submit(socket, "demo.countdown", {"steps": 5, "interval_ms": 200}) for _ in range(10)]
    await wait_for_job(job_ids[0], lambda job: job.status == JobStatus.RUNNING)
    await asyncio.to_thread(fault_stack.stop_redis)
    await asyncio.to_thread(fault_stack.start_redis)  # empty: the queued tasks are gone
    finished = [await wait_for_job(job_id, lambda job: job.is_finished, timeout=120) for job_id in job_ids]
    assert [job.status for job in finished] == [JobStatus.SUCCEEDED] * 10
    async with socket_of(user, fault_stack.ws_url) as (_, hello):
        seen = {job["id"]: job["status"] for job in hello["jobs"]}
    assert all(seen[job_id] == "succeeded" for job_id in job_ids)
