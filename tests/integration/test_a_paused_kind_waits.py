"""Pausing a kind from the operations view's messages, with real processes (Daphne, a worker): a queued job
of the paused kind waits, held and saying why, while other kinds run; resumed, it runs. Only staff may."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks import limits
from tasks.models import JobStatus
from tests.factories import UserFactory
from tests.integration.conftest import LiveStack
from tests.integration.faults.helpers import socket_of, submit, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def ask(socket: Any, message: dict[str, Any]) -> dict[str, Any]:
    request_id = uuid.uuid4().hex
    await socket.send(json.dumps({**message, "request_id": request_id}))
    while True:
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if reply.get("request_id") == request_id:
            return reply


async def test_a_paused_kinds_jobs_wait_until_it_is_resumed(live_stack: LiveStack, user: User) -> None:
    staff = await database_sync_to_async(UserFactory.create)(is_staff=True)
    async with socket_of(staff, live_stack.ws_url) as (ops, _), socket_of(user, live_stack.ws_url) as (mine, _):
        assert (await ask(mine, {"type": "ops.kind.pause", "kind": "demo.countdown"}))["code"] == "bad_message"
        paused = await ask(ops, {"type": "ops.kind.pause", "kind": "demo.countdown"})
        assert paused == {**paused, "type": "ops.kind", "kind": "demo.countdown", "paused": True}
        try:
            await asyncio.sleep(1.5)  # each worker process reads the paused kinds at most a second old
            waiting = await submit(mine, "demo.countdown", {"steps": 1})
            other = await submit(mine, "test.table", {"rows": 2})
            held = await wait_for_job(waiting, lambda job: job.hold == "paused")
            assert held.status == JobStatus.QUEUED
            assert held.progress["message"] == "waiting: demo.countdown is paused by an operator"
            assert (await wait_for_job(other, lambda job: job.is_finished)).status == JobStatus.SUCCEEDED
            await asyncio.sleep(1)
            assert (await database_sync_to_async(type(held).objects.get)(pk=held.pk)).status == JobStatus.QUEUED
            resumed = await ask(ops, {"type": "ops.kind.resume", "kind": "demo.countdown"})
            assert resumed["paused"] is False
            done = await wait_for_job(waiting, lambda job: job.is_finished)
            assert (done.status, done.hold) == (JobStatus.SUCCEEDED, "")
        finally:
            await database_sync_to_async(limits.set_paused)("demo.countdown", False, "test cleanup")
