"""A large batch's children (2,000 in the long form, 600 in the short: tests/scale.py) finished by two more
workers of two processes each, at once: the counters, moved in each child's transaction, equal a recount;
a socket that does not follow the batch gets its progress coalesced."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import ClientConnection

from tasks.models import JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import batch_is_exact, socket_of, submit_batch, wait_for_job
from tests.scale import scaled

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

CHILDREN = scaled(300, 2_000)
INTERVAL = 0.5  # JOBS_BATCH_PROGRESS_INTERVAL's default


async def frames_until_final(socket: ClientConnection, batch_id: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 300))
        frames.append(frame)
        if frame.get("job", {}).get("id") == batch_id and frame["type"] in ("job.succeeded", "job.failed"):
            return frames


# Its own time limit, like the 500-job crash test's: 2,000 jobs and the stack's settling after them took more
# than pytest's 180 s default on a busy machine.
@pytest.mark.long
@pytest.mark.timeout(420)
async def test_a_large_batch_finished_by_four_processes_leaves_exact_counters(
    fault_stack: FaultStack, user: User
) -> None:
    extra = [await asyncio.to_thread(fault_stack.start_worker, 2) for _ in range(2)]
    try:
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            jobs = [{"kind": "demo.countdown", "params": {"steps": 1}}] * CHILDREN
            started = time.monotonic()
            batch_id = await submit_batch(socket, "parallel", jobs, "many")
            frames = await frames_until_final(socket, batch_id)
            elapsed = time.monotonic() - started
        batch = await wait_for_job(batch_id, lambda job: job.is_finished)
    finally:
        for worker in extra:
            await asyncio.to_thread(fault_stack.stop_worker, worker)
    assert batch.status == JobStatus.SUCCEEDED, batch.error
    await database_sync_to_async(batch_is_exact)(batch_id)
    assert frames[-1]["job"]["batch"]["succeeded"] == CHILDREN
    # The socket does not follow the batch: no child's frame, and the batch's progress at most one frame
    # per interval, however many processes (5 worker processes and Daphne) move its children's two transitions each.
    assert not [f for f in frames if f.get("parent_id") or (f.get("job") or {}).get("parent_id")]
    progress = [f for f in frames if f["type"] == "job.progress"]
    assert 1 <= len(progress) <= elapsed / INTERVAL + 2
