"""A socket's slow database call does not hold up the other sockets of its process (patches.channels:
database calls on a pool of threads, not on Channels' one database thread)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.contrib.auth.models import User

from gateway import consumers
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)

SUBMIT = {"type": "job.submit", "request_id": "side-1", "kind": "demo.countdown", "params": {"steps": 1}}


async def test_a_submit_is_answered_while_another_socket_waits_on_the_database(
    user: User, other_user: User, monkeypatch: pytest.MonkeyPatch, sent_tasks: Any
) -> None:
    entered, release = threading.Event(), threading.Event()
    detail = consumers._job_detail

    def slow_detail(*args: Any) -> str:
        entered.set()
        release.wait(10)  # a query stuck behind a lock, or a slow round trip
        return detail(*args)

    monkeypatch.setattr(consumers, "_job_detail", slow_detail)
    async with connected(user) as (slow, _), connected(other_user) as (quick, _):
        job_id = (await slow.request({**SUBMIT, "request_id": "mine"}))["job"]["id"]
        await slow.receive_until("job.queued")
        await slow.send({"type": "job.get", "request_id": "g", "job_id": job_id})
        try:
            assert await asyncio.to_thread(entered.wait, 5)
            # Channels' one database thread would be busy with the call above until it is released.
            accepted = await quick.request(SUBMIT)
            assert accepted["type"] == "job.accepted"
        finally:
            release.set()
        detail_frame = await slow.receive_until("job.detail", timeout=10)
        assert detail_frame[-1]["job"]["id"] == job_id
