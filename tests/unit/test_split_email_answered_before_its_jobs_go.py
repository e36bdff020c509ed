"""A job.submit its kind splits into a batch (an email past 100 recipients) is answered job.accepted first;
its jobs are then handed out off the socket's path, as a batch.submit's are."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import User

from tests.unit.conftest import SentTasks
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_answer_comes_before_the_jobs_are_sent(user: User, sent_tasks: SentTasks) -> None:
    params = {"to": [f"reader{i}@example.com" for i in range(250)], "subject": "News", "body": "Hello."}
    async with connected(user) as (socket, _):
        await socket.send({"type": "job.submit", "request_id": "n-1", "kind": "email.send", "params": params})
        accepted = await socket.receive()
        assert accepted["type"] == "job.accepted" and accepted["job"]["kind"] == "batch"
        for _ in range(250):  # up to 5 s: they go in the background
            if len(sent_tasks) >= 3:
                break
            await asyncio.sleep(0.02)
    assert [task["name"] for task in sent_tasks] == ["email.send"] * 3
