"""Daphne restarts (SIGTERM, a new process on the same port) while jobs run: clients reconnect by
themselves and converge, no job is lost, and the stopped process gave back its sockets' slots in the
per-user connection count (or a redeploy could refuse a user with many tabs)."""

from __future__ import annotations

import asyncio

import pytest
import redis
from django.contrib.auth.models import User

from gateway.throttle import KEY_PREFIX
from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import SyncedClient, running, socket_of, submit, wait_for_job, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


async def test_daphne_restarted_during_jobs_clients_reconnect_and_no_job_is_lost(
    fault_stack: FaultStack, user: User
) -> None:
    clients = [await SyncedClient.of(user, fault_stack.ws_url) for _ in range(5)]
    async with running(clients):
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            job_ids = [await submit(socket, "demo.countdown", {"steps": 20, "interval_ms": 100}) for _ in range(4)]
        await wait_until(lambda: all(client.live for client in clients), "every client connected")
        await wait_for_job(job_ids[0], lambda job: job.progress["current"] >= 3)
        await asyncio.to_thread(fault_stack.restart_daphne)
        jobs = [await wait_for_job(job_id, lambda job: job.is_finished, timeout=120) for job_id in job_ids]
        await wait_until(lambda: all(client.shows(job_ids) for client in clients), "every client in sync", 60)
        # Only the five live sockets count: none of the five the old process held is left over.
        assert open_connections(fault_stack, user) == len(clients)
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * len(job_ids)
    assert all(client.connects >= 2 for client in clients)  # each one reconnected by itself


def open_connections(fault_stack: FaultStack, user: User) -> int:
    with redis.Redis.from_url(fault_stack.redis_url) as client:
        return int(client.zcard(f"{KEY_PREFIX}:connections:{user.pk}"))
