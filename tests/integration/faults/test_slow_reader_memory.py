"""A client that reads nothing while a burst of 10,000 events (about 10 MiB) and a job reporting
10,000 times reach it: Daphne's memory stays under a generous bound, and the client sees the final
state once it reads (or, if Daphne dropped it as a dead peer, in the hello of a reconnect).

The burst goes through the channel layer Daphne uses (CHANNEL_LAYER). On `core` the layer drops
what queues past its capacity while Daphne is busy; on `pubsub` every message reaches the
consumer. What the consumer takes, Daphne buffers for the socket without limit until the ping
timeout drops the peer, so the bound is generous."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.contrib.auth.models import User
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts import tokens
from gateway import frames
from tasks.models import JobStatus
from tests import procfs
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job
from transport.groups import user_group
from transport.publisher import FRAME_TYPE

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

BURST = 10_000  # events of about 1 KiB each: 10 MiB that the stuck client never reads
BOUND = 50 * 1024 * 1024


async def test_a_client_that_reads_nothing_costs_daphne_bounded_memory(fault_stack: FaultStack, user: User) -> None:
    assert fault_stack.daphne is not None
    daphne_pid = fault_stack.daphne.pid
    _, raw = await database_sync_to_async(tokens.create)(user, "stuck")
    headers = {"Authorization": f"Bearer {raw}"}
    # max_queue=1: the client stops reading from TCP after one frame, so the buffers fill up.
    async with connect(fault_stack.ws_url, additional_headers=headers, max_queue=1, ping_interval=None) as stuck:
        assert json.loads(await asyncio.wait_for(stuck.recv(), 10))["type"] == "hello"
        before = procfs.rss_kib(daphne_pid) * 1024
        peak = before
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not sampling.wait(0.05):
                peak = max(peak, procfs.rss_kib(daphne_pid) * 1024)

        sampler = asyncio.create_task(asyncio.to_thread(sample))
        # The layer as Daphne has it (core/settings/base.py: CHANNEL_LAYER, CHANNELS_PREFIX).
        kind = RedisPubSubChannelLayer if settings.CHANNEL_LAYER == "pubsub" else RedisChannelLayer
        layer = kind(hosts=[fault_stack.redis_url], prefix=fault_stack.env.get("CHANNELS_PREFIX", "asgi"))
        padding = "x" * 1000
        ghost = str(uuid.uuid4())  # events of a job the client merges by seq like any other
        for seq in range(1, BURST + 1):
            progress = {"current": seq, "total": BURST, "percent": None, "stage": "", "message": padding}
            frame = frames.progress_event(ghost, seq, progress)
            await layer.group_send(user_group(user.pk), {"type": FRAME_TYPE, "text": frame})
        async with socket_of(user, fault_stack.ws_url) as (reader, _):
            job_id = await submit(reader, "demo.countdown", {"steps": 10_000, "interval_ms": 0})
            while True:
                message = json.loads(await asyncio.wait_for(reader.recv(), 60))
                if message["type"] == "job.succeeded" and message["job"]["id"] == job_id:
                    break
        sampling.set()
        await sampler
        status = None
        try:
            async for data in stuck:
                message = json.loads(data)
                if message.get("job", {}).get("id") == job_id:
                    status = message["job"]["status"]
                    if status == "succeeded":
                        break
        except ConnectionClosed:
            pass  # Daphne dropped it as a dead peer (no pong): the hello of a reconnect tells
    assert fault_stack.daphne.poll() is None
    assert peak - before < BOUND, f"Daphne grew from {before >> 20} MiB to {peak >> 20} MiB"
    assert (await wait_for_job(job_id, lambda job: job.is_finished)).status == JobStatus.SUCCEEDED
    if status != "succeeded":
        async with socket_of(user, fault_stack.ws_url) as (_, hello):
            status = {job["id"]: job["status"] for job in hello["jobs"]}[job_id]
    assert status == "succeeded"
