"""The first message is `hello`, with the user's unfinished and recent jobs and the kinds offered."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks import services
from tests.unit.sockets import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


@database_sync_to_async
def make_jobs(owner: User, finished: int, unfinished: int) -> list[str]:
    ids = []
    for n in range(finished):
        job, _ = services.submit(owner, f"f{n}", "demo.countdown", {"steps": 1})
        services.cancel(owner, str(job.pk))
    for n in range(unfinished):
        job, _ = services.submit(owner, f"u{n}", "demo.countdown", {"steps": 1})
        ids.append(str(job.pk))
    return ids


async def test_hello_describes_the_user_and_the_kinds(user: User) -> None:
    async with connected(user) as (_, hello):
        assert hello["type"] == "hello" and hello["protocol"] == 1
        assert hello["user"] == {"id": user.pk, "username": user.username}
        assert "demo.countdown" in hello["kinds"]
        assert hello["jobs"] == []


async def test_hello_holds_unfinished_jobs_first_then_twenty_recent_finished(user: User, other_user: User) -> None:
    unfinished = await make_jobs(user, finished=23, unfinished=2)
    await make_jobs(other_user, finished=1, unfinished=1)
    async with connected(user) as (_, hello):
        jobs = hello["jobs"]
        assert [job["id"] for job in jobs[:2]] == list(reversed(unfinished))
        assert len(jobs) == 22
        assert {job["status"] for job in jobs[2:]} == {"cancelled"}
        job = jobs[0]
        assert set(job) == {
            "id", "kind", "status", "params", "attempt", "seq", "progress",
            "result", "error", "created_at", "started_at", "finished_at", "task_id", "artifacts", "eta_seconds",
            "parent_id", "batch", "priority", "unknown_outcome",
        }  # fmt: skip
        assert job["priority"] == "normal"
        assert job["created_at"].endswith("Z") and job["progress"]["current"] == 0
