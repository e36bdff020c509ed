"""Concurrency limits per kind and per user, and paused kinds: a job that may not start is held, queued
with no task and saying why, and is handed out again, highest priority first, when a slot frees."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from pytest_django.fixtures import Settings

from tasks import limits, liveness, reconciler, services
from tasks.models import Job, JobStatus, KindState
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def submit(user: User, priority: str = "normal") -> Job:
    job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1}, priority)
    return job


# The claims below are made in this process, which tasks.liveness takes for gone once it claims again (it
# runs one job at a time): each claimed job is recorded as run by pid 1 of this host, which outlives the test.
ELSEWHERE_ALIVE = f"{liveness.this_worker().rpartition(':')[0]}:1"


def claim(job: Job) -> Job | None:
    job.refresh_from_db()
    claimed = services.start(str(job.pk), job.celery_task_id)
    if claimed is not None:
        Job.objects.filter(pk=job.pk).update(worker=ELSEWHERE_ALIVE)
    return claimed


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def two_at_once(settings: Settings) -> None:
    settings.JOBS_CONCURRENCY = {"demo.countdown": 2}


@pytest.mark.usefixtures("two_at_once")
def test_a_job_over_its_kinds_limit_is_held_and_goes_when_a_slot_frees(user: User, sent_tasks: SentTasks) -> None:
    first, second, third = submit(user), submit(user), submit(user)
    assert claim(first) is not None and claim(second) is not None
    task_id = fresh(third).celery_task_id
    assert claim(third) is None
    held = fresh(third)
    assert (held.status, held.hold, held.celery_task_id) == (JobStatus.QUEUED, "kind_limit", "")
    assert held.progress["message"] == "waiting: 2 demo.countdown jobs already running"
    sent_tasks.clear()

    services.succeed(str(first.pk), {"steps": 1}, None)
    released = fresh(third)
    assert (released.hold, released.progress["message"]) == ("", "")
    assert released.celery_task_id not in ("", task_id)
    assert [task["task_id"] for task in sent_tasks] == [released.celery_task_id]
    assert claim(released) is not None


@pytest.mark.usefixtures("two_at_once")
def test_a_job_whose_process_is_gone_holds_no_slot(user: User, settings: Settings) -> None:
    first, second, third = submit(user), submit(user), submit(user)
    assert claim(first) is not None and claim(second) is not None
    stale = timezone.now() - timedelta(seconds=settings.JOBS_LEASE_SECONDS + 1)
    # On another host, without a heartbeat for a lease: gone (on this host, a dead pid says it at once).
    Job.objects.filter(pk=first.pk).update(worker="elsewhere:123", heartbeat_at=stale)
    assert claim(third) is not None


@pytest.mark.usefixtures("two_at_once")
def test_held_jobs_go_highest_priority_first(user: User) -> None:
    running = [submit(user), submit(user)]
    for job in running:
        assert claim(job) is not None
    low, high = submit(user, "low"), submit(user, "high")
    assert claim(low) is None and claim(high) is None
    services.succeed(str(running[0].pk), {"steps": 1}, None)
    assert (fresh(high).hold, fresh(low).hold) == ("", "kind_limit")


def test_a_user_over_the_per_user_limit_waits_and_others_do_not(
    user: User, other_user: User, settings: Settings
) -> None:
    settings.JOBS_CONCURRENCY_PER_USER = 1
    mine, my_next, theirs = submit(user), submit(user), submit(other_user)
    assert claim(mine) is not None
    assert claim(my_next) is None
    assert fresh(my_next).progress["message"] == "waiting: 1 of your jobs already running"
    assert claim(theirs) is not None
    services.fail(str(mine.pk), "demo_failure", "It failed.")
    assert claim(fresh(my_next)) is not None


def test_a_paused_kind_holds_its_queued_jobs_until_resumed(user: User) -> None:
    running = submit(user)
    assert claim(running) is not None
    limits.set_paused("demo.countdown", True, by="ops")
    waiting = submit(user)
    assert claim(waiting) is None
    assert fresh(waiting).progress["message"] == "waiting: demo.countdown is paused by an operator"
    services.succeed(str(running.pk), {"steps": 1}, None)  # a running one finishes; nothing is released
    assert fresh(waiting).hold == "paused"
    limits.set_paused("demo.countdown", False, by="ops")
    assert claim(fresh(waiting)) is not None


def test_a_worker_that_saw_the_pause_a_moment_ago_still_starts_a_job_released_by_the_resume(user: User) -> None:
    # Each worker process caches the paused kinds for a second. A resume in another process (Daphne)
    # hands the held jobs out at once, and a worker whose cache still says "paused" must not hold them
    # again: nothing would release them before the reconciler's next run.
    limits.set_paused("demo.countdown", True, by="ops")
    assert "demo.countdown" in limits._paused_kinds()  # this process has seen the pause
    KindState.objects.filter(kind="demo.countdown").update(paused=False)  # resumed elsewhere
    assert claim(submit(user)) is not None


@pytest.mark.usefixtures("two_at_once")
def test_a_held_job_can_be_cancelled(user: User) -> None:
    for job in (submit(user), submit(user)):
        assert claim(job) is not None
    held = submit(user)
    assert claim(held) is None
    services.cancel(user, str(held.pk))
    assert (fresh(held).status, fresh(held).hold) == (JobStatus.CANCELLED, "")


def test_the_reconciler_releases_what_a_lost_release_left_held(
    user: User, settings: Settings, sent_tasks: SentTasks
) -> None:
    settings.JOBS_CONCURRENCY = {"demo.countdown": 1}
    job = submit(user)
    Job.objects.filter(pk=job.pk).update(hold="kind_limit", celery_task_id="")  # held; its release was lost
    sent_tasks.clear()
    assert reconciler.reconcile().released == 1
    assert fresh(job).hold == "" and len(sent_tasks) == 1


def test_a_limit_for_a_kind_that_does_not_exist_stops_the_start(settings: Settings) -> None:
    settings.JOBS_CONCURRENCY = {"file.proces": 4}
    with pytest.raises(ImproperlyConfigured, match=r"file\.proces"):
        limits.check_settings()
