"""batch.submit over the socket: one job.accepted for the whole batch, or one invalid_params naming the child."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks.models import Job
from tests.unit.conftest import SentTasks
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)


def submit(n: int, mode: str = "parallel", request_id: str = "batch-1", **extra: Any) -> dict[str, Any]:
    jobs = [{"kind": "demo.countdown", "params": {"steps": i + 1}} for i in range(n)]
    return {"type": "batch.submit", "request_id": request_id, "title": "Nightly", "mode": mode, "jobs": jobs, **extra}


async def tasks_sent(sent_tasks: SentTasks, n: int) -> None:
    """The children are handed out after the answer, beside the socket: wait for them (and no more)."""
    async with asyncio.timeout(5):
        while len(sent_tasks) < n:  # noqa: ASYNC110 (a list another thread appends to: nothing to wait on)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert len(sent_tasks) == n


async def jobs_in_db() -> int:
    count: int = await database_sync_to_async(Job.objects.count)()
    return count


async def test_a_batch_is_accepted_as_one_job_with_its_counts(user: User, sent_tasks: SentTasks) -> None:
    async with connected(user) as (socket, _):
        accepted = await socket.request(submit(3))
        assert accepted["type"] == "job.accepted" and accepted["request_id"] == "batch-1"
        batch = accepted["job"]
        assert batch["kind"] == "batch" and batch["parent_id"] is None
        assert batch["params"] == {"title": "Nightly", "mode": "parallel", "size": 3}
        assert batch["batch"] == {"total": 3, "queued": 3, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
        assert batch["progress"]["current"] == 0 and batch["progress"]["total"] == 3
        queued = await socket.receive()
        assert queued["type"] == "job.queued" and queued["job"]["id"] == batch["id"]
        assert await socket.nothing_more()  # the children's own events go only to followers
    await tasks_sent(sent_tasks, 3)
    assert await jobs_in_db() == 4


async def test_a_bad_child_refuses_the_whole_batch_naming_it(user: User) -> None:
    message = submit(3)
    message["jobs"][1]["params"] = {"steps": 0}
    message["jobs"][2]["kind"] = "no.such"
    async with connected(user) as (socket, _):
        error = await socket.request(message)
        assert error["type"] == "error" and error["code"] == "invalid_params" and error["request_id"] == "batch-1"
        assert set(error["details"]) == {"jobs.1.steps", "jobs.2.kind"}
        assert (await socket.request({"type": "ping"}))["type"] == "pong"  # still usable
    assert await jobs_in_db() == 0


@pytest.mark.parametrize(("mode", "n"), [("sequence", 21), ("parallel", 0)])
async def test_sizes_outside_the_bounds_are_invalid_params(user: User, mode: str, n: int) -> None:
    async with connected(user) as (socket, _):
        error = await socket.request(submit(n, mode))
        assert error["code"] == "invalid_params" and "jobs" in error["details"]
    assert await jobs_in_db() == 0


async def test_the_same_request_id_returns_the_same_batch(user: User, sent_tasks: SentTasks) -> None:
    async with connected(user) as (socket, _):
        first = await socket.request(submit(2))
        await socket.receive_until("job.queued")
        again = await socket.request(submit(5))
        assert again["job"]["id"] == first["job"]["id"] and again["job"]["params"]["size"] == 2
    assert len(sent_tasks) == 2 and await jobs_in_db() == 3


async def test_a_large_batch_comes_in_parts_and_is_made_when_the_last_arrives(
    user: User, settings: Settings, sent_tasks: SentTasks
) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 1000
    async with connected(user) as (socket, _):
        part = await socket.request({**submit(2), "continues": True})
        assert part == {"type": "batch.part", "request_id": "batch-1", "received": 2}
        assert await jobs_in_db() == 0
        part = await socket.request({**submit(3), "offset": 2, "continues": True})
        assert part["received"] == 5
        accepted = await socket.request({**submit(1), "offset": 5})
        assert accepted["type"] == "job.accepted" and accepted["job"]["batch"]["total"] == 6
        await socket.receive_until("job.queued")
        await tasks_sent(sent_tasks, 6)
    assert await jobs_in_db() == 7


async def test_a_part_that_does_not_follow_on_is_refused_and_nothing_is_made(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 1000
    async with connected(user) as (socket, _):
        await socket.request({**submit(2), "continues": True})
        error = await socket.request({**submit(2), "offset": 3})
        assert error["code"] == "bad_message" and error["request_id"] == "batch-1"
        assert error["details"] == {"offset": "Expected 2."}
        # The pending parts were dropped with the refusal: starting over works.
        accepted = await socket.request(submit(1))
        assert accepted["job"]["batch"]["total"] == 1
    assert await jobs_in_db() == 2


async def test_hello_and_job_list_hold_batches_and_parent_id_lists_their_children(user: User) -> None:
    async with connected(user) as (socket, _):
        batch_id = (await socket.request(submit(3)))["job"]["id"]
        await socket.receive_until("job.queued")
        listed = await socket.request({"type": "job.list"})
        assert [job["id"] for job in listed["jobs"]] == [batch_id]
        kids = await socket.request({"type": "job.list", "filter": {"parent_id": batch_id}, "limit": 2})
        assert [job["params"]["steps"] for job in kids["jobs"]] == [1, 2]  # in their order
        assert {job["parent_id"] for job in kids["jobs"]} == {batch_id}
        rest = await socket.request(
            {"type": "job.list", "filter": {"parent_id": batch_id}, "cursor": kids["next_cursor"]}
        )
        assert [job["params"]["steps"] for job in rest["jobs"]] == [3] and rest["next_cursor"] is None
    async with connected(user) as (_, hello):
        assert [job["id"] for job in hello["jobs"]] == [batch_id]
