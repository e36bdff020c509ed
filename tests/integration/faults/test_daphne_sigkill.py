"""Daphne SIGKILLed (no shutdown, no cleanup: an OOM kill, a lost machine) while a user has the most
tabs allowed open and jobs run: a new Daphne on the same port takes them all back once the dead one's
connection slots go stale (CONNECTION_STALE_SECONDS, 4 re-check intervals: 4 s here), the clients see
the jobs' true state, only the live sockets count, and the dead process's channel-layer subscriptions
are gone with its Redis connections (only the new process is subscribed to the user's group)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User

from core import stack
from gateway.throttle import KEY_PREFIX
from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import SyncedClient, running, socket_of, submit, wait_for_job, wait_until
from transport.groups import user_group

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

TABS = 3  # the most a user may open on these Daphnes
SETTINGS = {"RATE_LIMIT_CONNECTIONS_PER_USER": str(TABS), "AUTH_RECHECK_SECONDS": "1"}


@contextmanager
def daphnes(fault_stack: FaultStack) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every Daphne the test starts on its port; whatever is left of them stops on the way out."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        stack.stop(started)


def start_daphne(fault_stack: FaultStack, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        process = subprocess.Popen(
            stack.daphne_command("127.0.0.1", port), env={**fault_stack.env, **SETTINGS}, stdout=output, stderr=output
        )
    stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=process)
    return process


def open_connections(fault_stack: FaultStack, user: User) -> int:
    with redis.Redis.from_url(fault_stack.redis_url) as client:
        return int(client.zcard(f"{KEY_PREFIX}:connections:{user.pk}"))


def group_subscribers(fault_stack: FaultStack, user: User) -> int:
    """Connections subscribed to the user's group channel (channels_redis.pubsub names it PREFIX__group__NAME)."""
    prefix = fault_stack.env.get("CHANNELS_PREFIX", "asgi")
    with redis.Redis.from_url(fault_stack.redis_url) as client:
        ((_, count),) = client.pubsub_numsub(f"{prefix}__group__{user_group(user.pk)}")
        return int(count)


async def test_daphne_sigkilled_with_a_users_every_tab_open_gives_the_slots_back_and_clients_resync(
    fault_stack: FaultStack, user: User
) -> None:
    port = stack.free_port()
    ws_url = f"ws://127.0.0.1:{port}/ws/jobs/"
    with daphnes(fault_stack) as started:
        started.append(await asyncio.to_thread(start_daphne, fault_stack, port, fault_stack.logs / "daphne-a.log"))
        async with socket_of(user, ws_url) as (socket, _):
            job_ids = [await submit(socket, "demo.countdown", {"steps": 20, "interval_ms": 100}) for _ in range(2)]
        await wait_until(lambda: open_connections(fault_stack, user) == 0, "the submitting socket's slot given back")
        clients = [await SyncedClient.of(user, ws_url) for _ in range(TABS)]
        async with running(clients):
            await wait_until(lambda: all(client.live for client in clients), "every tab connected")
            await wait_for_job(job_ids[0], lambda job: job.progress["current"] >= 3)
            started[0].kill()  # SIGKILL: no consumer runs its disconnect, no slot is given back
            await asyncio.to_thread(started[0].wait)
            assert open_connections(fault_stack, user) == TABS  # the dead process's slots, still counted
            log = fault_stack.logs / "daphne-b.log"
            started.append(await asyncio.to_thread(start_daphne, fault_stack, port, log))
            jobs = [await wait_for_job(job_id, lambda job: job.is_finished, timeout=120) for job_id in job_ids]
            # Within CONNECTION_STALE_SECONDS of the kill (and the clients' backoff), every tab is back.
            await wait_until(lambda: all(client.shows(job_ids) for client in clients), "every tab in sync", 60)
            assert open_connections(fault_stack, user) == TABS  # the live ones only
            if settings.CHANNEL_LAYER == "pubsub":
                assert group_subscribers(fault_stack, user) == 1  # the new process, not the dead one
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * len(job_ids)
    assert all(client.connects >= 2 for client in clients)
