"""A job that succeeds or fails leaves its owner a notification, made in the same transaction and
announced after the commit to every tab of the owner, with the unread count."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import transaction

from notifications.models import Notification
from tasks import services
from tasks.models import Job, JobStatus
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def running_job(owner: User, request_id: str = "r1") -> str:
    job, _ = services.submit(owner, request_id, "demo.countdown", {"steps": 3})
    services.start(str(job.pk), job.celery_task_id)
    return str(job.pk)


async def created(socket: Socket) -> dict[str, Any]:
    """Skip the job's own events up to the notification that follows them."""
    return (await socket.receive_until("notification.created"))[-1]


async def test_a_succeeded_job_notifies_every_tab_of_its_owner_only(user: User, other_user: User) -> None:
    async with connected(user) as (tab1, _), connected(user) as (tab2, _), connected(other_user) as (stranger, _):
        job_id = await running_job(user)
        await database_sync_to_async(services.succeed)(job_id, {"steps": 3}, None)
        for tab in (tab1, tab2):
            event = await created(tab)
            assert event["unread"] == 1
            notification = event["notification"]
            assert notification["kind"] == "job.succeeded" and notification["level"] == "info"
            assert notification["job"] == {"id": job_id, "kind": "demo.countdown"}
            assert notification["read"] is False and notification["notice_id"] is None
            assert notification["text"] == "demo.countdown job succeeded."
        assert await stranger.nothing_more()


async def test_a_failed_job_notifies_with_its_error_as_a_warning(user: User) -> None:
    async with connected(user) as (socket, _):
        job_id = await running_job(user)
        await database_sync_to_async(services.fail)(job_id, "demo_failure", "Failed at step 2.")
        events = await socket.receive_until("notification.created")
        assert [event["type"] for event in events] == [
            "job.queued",
            "job.started",
            "job.failed",
            "notification.created",
        ]
        notification = events[-1]["notification"]
        assert notification["kind"] == "job.failed" and notification["level"] == "warning"
        assert notification["text"] == "demo.countdown job failed: Failed at step 2."
        assert events[-1]["unread"] == 1


async def test_the_unread_count_grows_with_each_finished_job(user: User) -> None:
    async with connected(user) as (socket, _):
        for n in range(3):
            job_id = await running_job(user, f"r{n}")
            await database_sync_to_async(services.succeed)(job_id, {}, None)
            assert (await created(socket))["unread"] == n + 1
    async with connected(user) as (_, hello):
        assert hello["unread"] == 3


def test_the_notification_is_made_in_the_transition_and_rolls_back_with_it(user: User) -> None:
    job, _ = services.submit(user, "r1", "demo.countdown", {"steps": 1})
    services.start(str(job.pk), job.celery_task_id)

    def succeed_then_fail() -> None:
        with transaction.atomic():
            services.succeed(str(job.pk), {}, None)
            assert Notification.objects.filter(user=user, job=job).count() == 1
            raise RuntimeError("the caller's transaction fails after the transition")

    with pytest.raises(RuntimeError):
        succeed_then_fail()
    assert Notification.objects.filter(user=user).count() == 0
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_a_refused_transition_makes_no_notification(user: User) -> None:
    job, _ = services.submit(user, "r1", "demo.countdown", {"steps": 1})
    assert services.succeed(str(job.pk), {}, None) is None  # queued, not running: refused
    services.cancel(user, str(job.pk))
    assert services.fail(str(job.pk), "x", "y") is None
    assert Notification.objects.filter(user=user).count() == 0
