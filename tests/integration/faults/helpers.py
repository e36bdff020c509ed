"""Small helpers of the fault tests: a token socket on the fault stack, and waiting on the database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import ClientConnection, connect

from accounts import tokens
from tasks.models import Job


@asynccontextmanager
async def socket_of(user: User, ws_url: str) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    _, raw = await database_sync_to_async(tokens.create)(user, "faults")
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {raw}"}, open_timeout=10) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        yield socket, hello


async def submit(socket: ClientConnection, kind: str, params: dict[str, Any]) -> str:
    await socket.send(
        json.dumps({"type": "job.submit", "request_id": uuid.uuid4().hex, "kind": kind, "params": params})
    )
    while True:
        reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if reply["type"] == "job.accepted":
            return str(reply["job"]["id"])
        assert reply["type"] != "error", reply


async def wait_for_job(job_id: str, done: Callable[[Job], bool], timeout: float = 60) -> Job:
    """Poll the database until `done(job)` holds; the job as it then is."""
    deadline = time.monotonic() + timeout
    while True:
        job: Job = await database_sync_to_async(Job.objects.get)(pk=job_id)
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job.status} ({job.progress}, error {job.error})"
        await asyncio.sleep(0.1)


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
