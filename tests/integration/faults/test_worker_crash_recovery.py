"""Workers die (SIGKILL of a pool process, of the whole worker, or by the job itself): no job is lost,
no email goes out twice, and a job that keeps killing its worker is failed with worker_lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


async def test_sigkill_of_the_pool_process_mid_email_sends_every_message_exactly_once(
    fault_stack: FaultStack, user: User
) -> None:
    recipients = [f"reader{n}@example.com" for n in range(20)]
    smtp = fault_stack.smtp
    before = len(smtp.received)
    smtp.handler.accept_delay = 0.2  # the worker waits for each "250": that is when we strike
    try:
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            params = {"to": recipients, "subject": "Crash test", "body": "Exactly once, please."}
            job_id = await submit(socket, "email.send", params)
            await wait_until(lambda: len(smtp.received) - before >= 5, "five messages")
            (worker,) = fault_stack.workers[-1:]
            for pid in fault_stack.pool_processes(worker):
                os.kill(pid, signal.SIGKILL)
            job = await wait_for_job(job_id, lambda job: job.is_finished)
    finally:
        smtp.handler.accept_delay = 0
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.deliveries == 2  # it was delivered again after the crash
    for address in recipients:
        assert len(smtp.to(address)) == 1, address


async def test_sigkill_of_the_whole_worker_then_a_new_worker_finishes_the_job(
    fault_stack: FaultStack, user: User
) -> None:
    async with socket_of(user, fault_stack.ws_url) as (socket, _):
        job_id = await submit(socket, "demo.countdown", {"steps": 30, "interval_ms": 100})
        await wait_for_job(job_id, lambda job: job.progress["current"] >= 3)
        # In threads: the socket must keep answering Daphne's pings meanwhile.
        await asyncio.to_thread(fault_stack.kill_worker, fault_stack.workers[-1])
        await asyncio.to_thread(fault_stack.start_worker)
        job = await wait_for_job(job_id, lambda job: job.is_finished)
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "job.succeeded":
            message = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if message.get("job_id", message.get("job", {}).get("id")) == job_id:
                events.append(message)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"steps": 30}
    types = [event["type"] for event in events if event["type"] != "job.progress"]
    # Users see it queued and started again with the next delivery.
    assert types == ["job.queued", "job.started", "job.queued", "job.started", "job.succeeded"]


async def test_a_job_that_kills_its_worker_every_time_fails_with_worker_lost(
    fault_stack: FaultStack, user: User
) -> None:
    async with socket_of(user, fault_stack.ws_url) as (socket, _):
        job_id = await submit(socket, "test.crash", {})
        job = await wait_for_job(job_id, lambda job: job.is_finished)
        assert job.status == JobStatus.FAILED
        assert job.error is not None and job.error["code"] == "worker_lost"
        assert job.deliveries == 3

        # The worker runs no job any more (the reconciler may be passing by; the delivery that
        # found the job lost and failed it may take a moment to end), and it is healthy: it
        # runs the next job.
        def idle() -> bool:
            return [task["name"] for task in fault_stack.active_tasks() if task["name"] != "jobs.reconcile"] == []

        await wait_until(idle, "the worker to run nothing", timeout=15)
        next_job = await submit(socket, "demo.countdown", {"steps": 2})
        assert (await wait_for_job(next_job, lambda job: job.is_finished)).status == JobStatus.SUCCEEDED


async def test_a_worker_stopped_with_sigterm_finishes_its_job_first(fault_stack: FaultStack, user: User) -> None:
    async with socket_of(user, fault_stack.ws_url) as (socket, _):
        job_id = await submit(socket, "demo.countdown", {"steps": 20, "interval_ms": 100})
        await wait_for_job(job_id, lambda job: job.progress["current"] >= 2)
        worker = fault_stack.workers[-1]
        try:
            worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown
            await asyncio.to_thread(worker.wait, 60)
            job = await wait_for_job(job_id, lambda job: job.is_finished)
        finally:
            await asyncio.to_thread(fault_stack.start_worker)  # whatever happened: the tests after need a worker
    assert job.status == JobStatus.SUCCEEDED
    assert job.deliveries == 1  # finished by the worker that had it, not redelivered
