"""20 clients connect and disconnect in a loop while jobs run: every client, once it stays connected,
shows every job succeeded (hello snapshots and events merged by seq, as the protocol says)."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import User

from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import SyncedClient, running, socket_of, submit, wait_for_job, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


async def test_twenty_clients_churning_during_jobs_all_end_with_every_final_state(
    fault_stack: FaultStack, user: User
) -> None:
    churn = asyncio.Event()
    churn.set()
    clients = [await SyncedClient.of(user, fault_stack.ws_url, churn) for _ in range(20)]
    async with running(clients):
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            job_ids = [await submit(socket, "demo.countdown", {"steps": 20, "interval_ms": 50}) for _ in range(6)]
        # Churn while the jobs run one after another on the single worker process.
        # Started, at least: a poll on a busy machine can miss the second that the last job is running.
        await wait_for_job(job_ids[-1], lambda job: job.status != JobStatus.QUEUED)
        await wait_until(lambda: all(client.connects >= 3 for client in clients), "every client to churn")
        jobs = [await wait_for_job(job_id, lambda job: job.is_finished) for job_id in job_ids]
        churn.clear()
        await wait_until(lambda: all(client.shows(job_ids) for client in clients), "every client in sync", 60)
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * len(job_ids)
