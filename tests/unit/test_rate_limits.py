"""Per-user and per-connection limits answer rate_limited with retry_after, then close with 4008."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from gateway.consumers import JobsConsumer
from tasks.models import Job
from tests.unit.sockets import Socket, closed_with, connected

pytestmark = pytest.mark.django_db(transaction=True)


def submit(n: int) -> dict[str, object]:
    return {"type": "job.submit", "request_id": f"r{n}", "kind": "demo.countdown", "params": {"steps": 1}}


async def test_submissions_per_minute_are_limited_per_user(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_SUBMITS_PER_MINUTE = 3
    async with connected(user) as (socket, _):
        replies = []
        for n in range(5):
            await socket.send(submit(n))
            replies.append(await socket.receive())
            if replies[-1]["type"] == "job.accepted":
                await socket.receive()  # its job.queued
        assert [reply["type"] for reply in replies] == ["job.accepted"] * 3 + ["error"] * 2
        assert replies[-1]["code"] == "rate_limited" and replies[-1]["request_id"] == "r4"
        assert 0 < replies[-1]["details"]["retry_after"] <= 60


async def test_the_limit_is_shared_by_every_connection_of_the_user(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_SUBMITS_PER_MINUTE = 1
    async with connected(user) as (first, _), connected(user) as (second, _):
        assert (await first.request(submit(1)))["type"] == "job.accepted"
        assert (await second.receive())["type"] == "job.queued"  # the first socket's job, on every tab
        assert (await second.request(submit(2)))["code"] == "rate_limited"


async def test_messages_per_second_are_limited_per_connection(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 5
    async with connected(user) as (socket, _):
        replies = [await socket.request({"type": "ping"}) for _ in range(7)]
        assert replies[:5] == [{"type": "pong"}] * 5
        assert {reply.get("code") for reply in replies[5:]} == {"rate_limited"}


async def test_a_submit_refused_by_the_message_rate_names_its_request(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 2
    async with connected(user) as (socket, _):
        for _ in range(2):
            assert (await socket.request({"type": "ping"}))["type"] == "pong"
        refused = await socket.request(submit(7))
        assert refused["code"] == "rate_limited"
        assert refused["request_id"] == "r7"
        # Any message that carries a request_id (protocol 1.1) gets it back too.
        refused = await socket.request({"type": "ping", "request_id": "p1"})
        assert (refused["code"], refused["request_id"]) == ("rate_limited", "p1")


async def flooded(socket: Socket, pings: int) -> int:
    """Send `pings` pings without reading the answers; the code the server then closed the socket with."""
    for _ in range(pings):
        await socket.send({"type": "ping"})
    return await closed_with(socket.communicator)


async def test_a_connection_that_ignores_the_warnings_is_closed_with_4008(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 2
    settings.RATE_LIMIT_STRIKES = 3
    async with connected(user) as (socket, _):
        assert await flooded(socket, 20) == 4008


async def test_no_frame_sent_before_the_client_saw_the_close_is_acted_on(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 2
    settings.RATE_LIMIT_STRIKES = 3
    async with connected(user) as (socket, _):
        assert await flooded(socket, 6) == 4008
        # Sent before the client saw the close, read once the message rate allows again: no job comes of
        # them, as no job.accepted could reach the client any more.
        await asyncio.sleep(1.1)
        for n in range(3):
            await socket.send(submit(n))
        await asyncio.sleep(0.5)
        assert not await database_sync_to_async(Job.objects.filter(owner=user).exists)()


async def test_open_connections_per_user_are_limited(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_CONNECTIONS_PER_USER = 2
    async with connected(user), connected(user):
        communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
        communicator.scope["user"] = user
        await communicator.connect()
        refusal = await communicator.receive_json_from()
        assert refusal["code"] == "rate_limited"
        assert await closed_with(communicator) == 4008
    # Closed connections stop counting.
    async with connected(user) as (_, hello):
        assert hello["type"] == "hello"


async def test_queued_and_running_jobs_per_user_are_capped(user: User, settings: Settings) -> None:
    settings.JOBS_MAX_ACTIVE_PER_USER = 2
    async with connected(user) as (socket, _):
        for n in range(2):
            assert (await socket.request(submit(n)))["type"] == "job.accepted"
            await socket.receive()  # job.queued
        refused = await socket.request(submit(3))
        assert refused["code"] == "rate_limited" and refused["details"]["retry_after"] > 0
