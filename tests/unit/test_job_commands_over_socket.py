"""job.submit, job.cancel and job.retry over the socket, and the events that follow on every tab."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks import services
from tasks.models import Job
from tests.unit.conftest import SentTasks
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)

SUBMIT = {"type": "job.submit", "request_id": "req-1", "kind": "demo.countdown", "params": {"steps": 5}}


async def test_submit_answers_accepted_then_every_tab_sees_queued(user: User, sent_tasks: SentTasks) -> None:
    async with connected(user) as (tab1, _), connected(user) as (tab2, _):
        accepted = await tab1.request(SUBMIT)
        assert accepted["type"] == "job.accepted" and accepted["request_id"] == "req-1"
        job = accepted["job"]
        assert job["status"] == "queued" and job["seq"] == 1
        assert job["params"] == {"steps": 5, "interval_ms": 0, "log_progress": False}
        for tab in (tab1, tab2):
            queued = await tab.receive()
            assert queued["type"] == "job.queued" and queued["job"]["id"] == job["id"] and queued["job"]["seq"] == 2
        # The task is handed to Celery after the answer, off the database thread.
        for _ in range(200):
            if sent_tasks:
                break
            await asyncio.sleep(0.01)
        assert [task["args"] for task in sent_tasks] == [[job["id"]]]


async def test_other_users_see_nothing(user: User, other_user: User) -> None:
    async with connected(user) as (mine, _), connected(other_user) as (theirs, _):
        await mine.request(SUBMIT)
        assert (await mine.receive())["type"] == "job.queued"
        assert await theirs.nothing_more()


async def test_resubmitting_a_request_id_returns_the_same_job_and_starts_nothing(
    user: User, sent_tasks: SentTasks
) -> None:
    async with connected(user) as (socket, _):
        first = await socket.request(SUBMIT)
        await socket.receive_until("job.queued")
        again = await socket.request({**SUBMIT, "params": {"steps": 7}})
        assert again["type"] == "job.accepted" and again["job"]["id"] == first["job"]["id"]
        assert await socket.nothing_more()
    assert len(sent_tasks) == 1
    assert await database_sync_to_async(Job.objects.count)() == 1


async def test_cancel_sends_cancelled_and_a_second_cancel_is_a_conflict(user: User) -> None:
    async with connected(user) as (socket, _):
        job_id = (await socket.request(SUBMIT))["job"]["id"]
        await socket.receive_until("job.queued")
        await socket.send({"type": "job.cancel", "job_id": job_id})
        cancelled = await socket.receive()
        assert cancelled["type"] == "job.cancelled" and cancelled["job"]["status"] == "cancelled"
        assert cancelled["job"]["seq"] == 3
        conflict = await socket.request({"type": "job.cancel", "job_id": job_id})
        assert conflict["code"] == "conflict" and conflict["request_id"] is None


async def test_retry_queues_the_job_again_as_a_new_attempt(user: User) -> None:
    async with connected(user) as (socket, _):
        job_id = (await socket.request(SUBMIT))["job"]["id"]
        await socket.receive_until("job.queued")
        not_yet = await socket.request({"type": "job.retry", "job_id": job_id})
        assert not_yet["code"] == "conflict"
        await socket.request({"type": "job.cancel", "job_id": job_id})
        await socket.send({"type": "job.retry", "job_id": job_id})
        queued = await socket.receive()
        assert queued["type"] == "job.queued" and queued["job"]["attempt"] == 2 and queued["job"]["seq"] == 4


async def test_worker_events_reach_the_socket_in_seq_order(user: User) -> None:
    async with connected(user) as (socket, _):
        job_id = (await socket.request(SUBMIT))["job"]["id"]
        await socket.receive_until("job.queued")
        job = await database_sync_to_async(Job.objects.get)(pk=job_id)
        await database_sync_to_async(services.start)(job_id, job.celery_task_id)
        await database_sync_to_async(services.save_progress)(job_id, {"current": 1, "total": 5})
        await database_sync_to_async(services.succeed)(job_id, {"steps": 5}, None)
        events = await socket.receive_until("job.succeeded")
        assert [event["type"] for event in events] == ["job.started", "job.progress", "job.succeeded"]
        progress = events[1]
        eta = progress.pop("eta_seconds")  # the estimate of the time left (1.1), from the rate so far
        assert progress == {"type": "job.progress", "job_id": job_id, "seq": 4, "progress": {"current": 1, "total": 5}}
        assert isinstance(eta, float) and eta >= 0
        assert events[2]["job"]["result"] == {"steps": 5}


async def test_ping_answers_pong(user: User) -> None:
    async with connected(user) as (socket, _):
        assert await socket.request({"type": "ping"}) == {"type": "pong"}


async def test_staff_see_only_their_own_jobs_on_the_socket(user: User, other_user: User) -> None:
    other_user.is_staff = other_user.is_superuser = True
    await database_sync_to_async(other_user.save)()
    async with connected(user) as (mine, _):
        job_id = (await mine.request(SUBMIT))["job"]["id"]
        async with connected(other_user) as (staff, hello):
            assert hello["jobs"] == []
            reply = await staff.request({"type": "job.cancel", "job_id": job_id})
            assert reply["code"] == "not_found"
    # Read again from the database: the job is as its owner left it.
    job = await database_sync_to_async(Job.objects.get)(pk=job_id)
    assert (job.status, job.seq) == ("queued", 2)
