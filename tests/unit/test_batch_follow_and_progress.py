"""A batch's children reach a socket only while it follows the batch; the batch's own progress is coalesced."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import batches
from tests.unit.batching import children, make_batch, run
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)


async def drain(socket: Socket) -> list[dict[str, Any]]:
    frames = []
    while not await socket.nothing_more():
        frames.append(await socket.receive())
    return frames


def run_all(batch_id: str) -> None:
    from tasks.models import Job

    for child in children(Job.objects.get(pk=batch_id)):
        run(child)


async def test_children_events_reach_only_the_sockets_that_follow_the_batch(user: User) -> None:
    batch = await database_sync_to_async(make_batch)(user, 2)
    async with connected(user) as (follower, _), connected(user) as (other, _):
        followed = await follower.request({"type": "batch.follow", "job_id": str(batch.pk), "request_id": "f"})
        assert followed == {"type": "batch.follow", "request_id": "f", "job_id": str(batch.pk), "following": True}
        await database_sync_to_async(run_all)(str(batch.pk))
        seen, unseen = await drain(follower), await drain(other)
        kid_ids = {str(kid.pk) for kid in await database_sync_to_async(children)(batch)}
        child_events = [f for f in seen if f.get("job", {}).get("id") in kid_ids]
        assert {f["type"] for f in child_events} == {"job.started", "job.succeeded"}
        assert all(f["job"]["parent_id"] == str(batch.pk) for f in child_events)
        assert not [f for f in unseen if f.get("job", {}).get("id") in kid_ids or f.get("job_id") in kid_ids]
        final = [f for f in unseen if f["type"] == "job.succeeded"]
        assert [f["job"]["batch"]["succeeded"] for f in final] == [2]
        await follower.request({"type": "batch.unfollow", "job_id": str(batch.pk)})
        batch2 = await database_sync_to_async(make_batch)(user, 1, request_id="b-2")
        await database_sync_to_async(run_all)(str(batch2.pk))
        later = await drain(follower)
        assert all(f.get("job", {}).get("parent_id") is None for f in later)


async def test_following_needs_a_batch_of_ones_own(user: User, other_user: User) -> None:
    batch = await database_sync_to_async(make_batch)(user, 1)
    async with connected(other_user) as (socket, _):
        refused = await socket.request({"type": "batch.follow", "job_id": str(batch.pk)})
        assert refused["code"] == "not_found"
    async with connected(user) as (socket, _):
        child = (await database_sync_to_async(children)(batch))[0]
        refused = await socket.request({"type": "batch.follow", "job_id": str(child.pk)})
        assert refused["code"] == "conflict"


async def test_a_socket_that_does_not_follow_gets_the_batch_progress_coalesced(
    user: User, settings: Settings, batch_progress: batches.Coalescer
) -> None:
    settings.JOBS_BATCH_PROGRESS_INTERVAL = 0.2
    n = 150
    batch = await database_sync_to_async(make_batch)(user, n)
    async with connected(user) as (socket, _):
        started = time.monotonic()
        await database_sync_to_async(run_all)(str(batch.pk))
        elapsed = time.monotonic() - started
        frames = await drain(socket)
    progress = [f for f in frames if f["type"] == "job.progress"]
    assert all(f["job_id"] == str(batch.pk) for f in progress)
    # 300 child transitions; the socket sends at most one progress frame of the batch per interval.
    assert 1 <= len(progress) <= elapsed / 0.2 + 2
    assert progress[0]["batch"]["total"] == n
    seqs = [f["seq"] for f in progress]
    assert seqs == sorted(seqs)
    final = [f for f in frames if f["type"] == "job.succeeded"]
    assert len(final) == 1, [(f["type"], f.get("seq") or f.get("job", {}).get("seq")) for f in frames]
    assert final[0]["job"]["batch"]["succeeded"] == n
    assert len(frames) < 2 * n  # not one frame per child transition
