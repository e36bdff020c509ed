"""A client that reads nothing while 16 times WEBSOCKET_SEND_BUFFER_BYTES of events reach it: Daphne
holds no more than the limit for it (its peak memory grows by less than a bound derived from the
limit), closes it with 4012 once past the limit, and the hello of its reconnect shows the true state
of a job that ran meanwhile. Another socket of the same user, which reads, is not closed.

The burst goes through the channel layer Daphne uses (CHANNEL_LAYER). The stuck client's receive
buffer is kept small, so the kernel absorbs little of the burst and Daphne's own buffer is what fills."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.contrib.auth.models import User
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from accounts import tokens
from gateway import frames, protocol
from tasks.models import JobStatus
from tests import procfs
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import Daphne, own_daphne, socket_of, submit, wait_for_job
from transport.groups import user_group
from transport.publisher import FRAME_TYPE

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

LIMIT = 1024 * 1024  # this test's Daphne's WEBSOCKET_SEND_BUFFER_BYTES
PADDING = 20 * 1024  # each event of the burst is a little over 20 KiB
BURST = 16 * LIMIT // PADDING  # events: 16 MiB, four times what the kernel's socket buffers take here
# Twisted holds up to the limit and, while it joins its buffered chunks to write them, one copy more;
# the rest of Daphne (the paced burst's reads, the other socket's job) gets a small fixed allowance.
# Without the limit Daphne grows by some 12 MiB here: what the kernel does not take of the burst.
BOUND = 2 * LIMIT + 2 * 1024 * 1024
PACE = 16  # events sent before waiting for the reading socket to have them
SMALL_RECEIVE_BUFFER = 64 * 1024


@pytest.fixture
def daphne(fault_stack: FaultStack) -> Iterator[Daphne]:
    """A Daphne of the fault stack of its own, with a small send buffer limit."""
    log = fault_stack.logs / "daphne-slow-reader.log"
    with own_daphne(fault_stack.env, log, WEBSOCKET_SEND_BUFFER_BYTES=str(LIMIT)) as daphne:
        yield daphne


@asynccontextmanager
async def stuck_socket(user: User, ws_url: str) -> AsyncIterator[ClientConnection]:
    """A token socket that stops reading after its hello: max_queue=1 stops websockets reading from TCP,
    and a small SO_RCVBUF (set before connecting, so the kernel does not grow it) keeps the kernel's share small."""
    _, raw = await database_sync_to_async(tokens.create)(user, "stuck")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
    sock.setblocking(False)
    url = urlsplit(ws_url)
    await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
    headers = {"Authorization": f"Bearer {raw}"}
    async with connect(ws_url, sock=sock, additional_headers=headers, max_queue=1, ping_interval=None) as stuck:
        assert json.loads(await asyncio.wait_for(stuck.recv(), 10))["type"] == "hello"
        yield stuck


async def send_burst(user: User, fault_stack: FaultStack, reader: ClientConnection) -> None:
    """BURST progress events of a job the clients do not know, through the layer as Daphne has it
    (core/settings/base.py: CHANNEL_LAYER, CHANNELS_PREFIX). They go out a few at a time, each few
    once `reader` has them, so that what Daphne holds is the stuck socket's, not a queue of the layer's."""
    kind = RedisPubSubChannelLayer if settings.CHANNEL_LAYER == "pubsub" else RedisChannelLayer
    layer = kind(hosts=[fault_stack.redis_url], prefix=fault_stack.env.get("CHANNELS_PREFIX", "asgi"))
    ghost = str(uuid.uuid4())
    for first in range(1, BURST + 1, PACE):
        last = min(first + PACE - 1, BURST)
        for seq in range(first, last + 1):
            progress = {"current": seq, "total": BURST, "percent": None, "stage": "", "message": "x" * PADDING}
            frame = frames.progress_event(ghost, seq, progress)
            await layer.group_send(user_group(user.pk), {"type": FRAME_TYPE, "text": frame})
        while True:
            message = json.loads(await asyncio.wait_for(reader.recv(), 30))
            if message.get("job_id") == ghost and message["seq"] == last:
                break


async def run_job(reader: ClientConnection) -> str:
    """A short job, submitted and followed to its end on `reader`: its id."""
    job_id = await submit(reader, "demo.countdown", {"steps": 3, "interval_ms": 20})
    while True:
        message = json.loads(await asyncio.wait_for(reader.recv(), 60))
        if message["type"] == "job.succeeded" and message["job"]["id"] == job_id:
            return job_id


async def close_code_once_read(stuck: ClientConnection) -> int | None:
    """Read the stuck socket until it closes: the code the server closed it with."""
    try:
        async for _ in stuck:
            pass
    except ConnectionClosed:
        pass
    return stuck.close_code


async def test_a_client_that_reads_nothing_is_closed_with_4012_past_the_limit_and_costs_no_more(
    fault_stack: FaultStack, daphne: Daphne, user: User
) -> None:
    ws_url, daphne_pid = daphne.ws_url, daphne.pid
    async with stuck_socket(user, ws_url) as stuck, socket_of(user, ws_url) as (reader, _):
        await run_job(reader)  # Daphne has now loaded what serving a job takes
        before = procfs.rss_kib(daphne_pid) * 1024
        await send_burst(user, fault_stack, reader)
        job_id = await run_job(reader)  # the reading socket of the same user is served throughout
        peak = procfs.peak_rss_kib(daphne_pid) * 1024
        assert peak - before < BOUND, f"Daphne grew from {before >> 10} KiB to a peak of {peak >> 10} KiB"
        assert await asyncio.wait_for(close_code_once_read(stuck), 60) == protocol.CLOSE_RESYNC == 4012
    assert (await wait_for_job(job_id, lambda job: job.is_finished)).status == JobStatus.SUCCEEDED
    async with socket_of(user, ws_url) as (_, hello):
        assert {job["id"]: job["status"] for job in hello["jobs"]}[job_id] == "succeeded"
