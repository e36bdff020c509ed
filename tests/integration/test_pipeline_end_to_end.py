"""The job pipeline with real processes: WebSocket -> Daphne -> Celery worker -> Redis -> every tab of the owner."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks.models import Job, JobStatus
from tests.factories import PASSWORD
from tests.integration.client import is_terminal_event, job_id_of, jobs_client, login, seq_of
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def cookie_for(live_stack: LiveStack, user: User) -> str:
    return await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)


async def test_a_countdown_runs_to_success_with_events_in_seq_order(live_stack: LiveStack, user: User) -> None:
    cookie = await cookie_for(live_stack, user)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        assert "demo.countdown" in client.hello["kinds"]
        job = await client.submit("demo.countdown", {"steps": 5, "interval_ms": 150})
        events = await client.receive_until(is_terminal_event(job["id"]))
    types = [event["type"] for event in events]
    assert types[:2] == ["job.queued", "job.started"]
    assert types[-1] == "job.succeeded"
    assert set(types[2:-1]) == {"job.progress"} and len(types[2:-1]) == 5
    seqs = [job["seq"]] + [seq_of(event) for event in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert [event["progress"]["current"] for event in events[2:-1]] == [1, 2, 3, 4, 5]
    final = events[-1]["job"]
    assert final["result"] == {"steps": 5} and final["status"] == "succeeded"
    assert final["progress"]["percent"] == 100.0 and final["finished_at"] is not None


async def test_fail_at_ends_in_job_failed_with_its_error(live_stack: LiveStack, user: User) -> None:
    cookie = await cookie_for(live_stack, user)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        job = await client.submit("demo.countdown", {"steps": 5, "fail_at": 3})
        events = await client.receive_until(is_terminal_event(job["id"]))
    failed = events[-1]["job"]
    assert events[-1]["type"] == "job.failed"
    assert failed["error"] == {"code": "demo_failure", "message": "Failed at step 3, as requested by fail_at."}
    assert failed["progress"]["current"] == 2


async def test_cancelling_a_running_job_stops_the_worker(live_stack: LiveStack, user: User) -> None:
    cookie = await cookie_for(live_stack, user)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        job = await client.submit("demo.countdown", {"steps": 200, "interval_ms": 50})
        await client.receive_until(lambda m: m["type"] == "job.progress" and m["job_id"] == job["id"])
        await client.send({"type": "job.cancel", "job_id": job["id"]})
        events = await client.receive_until(is_terminal_event(job["id"]))
        cancelled = events[-1]
        assert cancelled["type"] == "job.cancelled"
        assert cancelled["job"]["status"] == "cancelled"
        # Nothing newer than the cancellation follows: the worker stopped.
        assert await client.silent_for(0.5)
    stored = await database_sync_to_async(Job.objects.get)(pk=job["id"])
    assert stored.status == JobStatus.CANCELLED
    assert stored.seq == cancelled["job"]["seq"]
    assert stored.progress["current"] < 200


async def test_every_tab_of_the_owner_sees_the_same_events_and_other_users_none(
    live_stack: LiveStack, user: User, other_user: User
) -> None:
    mine = await cookie_for(live_stack, user)
    theirs = await cookie_for(live_stack, other_user)
    origin = live_stack.base_url
    async with (
        jobs_client(live_stack.ws_url, mine, origin) as tab1,
        jobs_client(live_stack.ws_url, mine, origin) as tab2,
        jobs_client(live_stack.ws_url, theirs, origin) as stranger,
    ):
        job = await tab1.submit("demo.countdown", {"steps": 3, "interval_ms": 100})
        seen1 = await tab1.receive_until(is_terminal_event(job["id"]))
        seen2 = await tab2.receive_until(is_terminal_event(job["id"]))
        assert [(e["type"], seq_of(e)) for e in seen1] == [(e["type"], seq_of(e)) for e in seen2]
        assert {job_id_of(e) for e in seen2} == {job["id"]}
        assert await stranger.silent_for(0.5)


async def test_a_client_reconnecting_mid_job_gets_its_latest_state_in_hello(live_stack: LiveStack, user: User) -> None:
    cookie = await cookie_for(live_stack, user)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        job = await client.submit("demo.countdown", {"steps": 30, "interval_ms": 100})
        events = await client.receive_until(lambda m: m["type"] == "job.progress" and m["progress"]["current"] >= 2)
        last_seen = seq_of(events[-1])
    await asyncio.sleep(0.5)  # the job goes on while nobody is connected
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        snapshot = next(j for j in client.hello["jobs"] if j["id"] == job["id"])
        assert snapshot["status"] == "running"
        assert snapshot["seq"] > last_seen
        assert snapshot["progress"]["current"] > 2
        rest = await client.receive_until(is_terminal_event(job["id"]))
        newer = [event for event in rest if seq_of(event) > snapshot["seq"]]
        assert newer[-1]["type"] == "job.succeeded"
        assert [seq_of(event) for event in newer] == sorted(seq_of(event) for event in newer)
