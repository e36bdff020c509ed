"""A flood of submits from one user is bounded and answered rate_limited, while another user is served;
every answer names the request it answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts import tokens
from tasks.models import Job
from tests.factories import PASSWORD
from tests.integration.client import jobs_client, login
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FLOOD = 1_000


async def test_a_burst_of_a_thousand_submits_is_contained(live_stack: LiveStack, user: User, other_user: User) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "flood")
    cookie = await asyncio.to_thread(login, live_stack.base_url, other_user.username, PASSWORD)
    replies: dict[str, int] = {}
    answered: list[str | None] = []  # the request_id of every job.accepted and error, in order
    sent: set[str] = set()
    close_code = None
    async with (
        connect(live_stack.ws_url, additional_headers={"Authorization": f"Bearer {raw}"}) as flooder,
        jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as bystander,
    ):
        await flooder.recv()  # hello
        for n in range(FLOOD):
            request_id = f"flood-{n}"
            frame = {"type": "job.submit", "request_id": request_id, "kind": "demo.countdown", "params": {"steps": 1}}
            try:
                await flooder.send(json.dumps(frame))
            except ConnectionClosed:
                break
            sent.add(request_id)
        # Mid-flood, someone else's submit is accepted.
        job = await bystander.submit("demo.countdown", {"steps": 1})
        assert job["status"] == "queued"
        try:
            while True:
                reply = json.loads(await asyncio.wait_for(flooder.recv(), 30))
                key = reply.get("code", reply["type"])
                replies[key] = replies.get(key, 0) + 1
                if reply["type"] in ("job.accepted", "error"):
                    answered.append(reply["request_id"])
        except ConnectionClosed as closed:
            close_code = closed.rcvd.code if closed.rcvd else None
    assert close_code == 4008  # it kept going after repeated warnings
    assert replies.get("rate_limited", 0) >= 1
    accepted = await database_sync_to_async(Job.objects.filter(owner=user).count)()
    assert 1 <= accepted <= 30
    assert replies.get("job.accepted", 0) == accepted
    # Whichever check refused it (the message rate, the submission rate), an answer names its request:
    # a client that waits for the answer to its request_id is never left waiting.
    assert None not in answered
    assert set(answered) <= sent
    assert len(answered) == len(set(answered))  # one answer per request
