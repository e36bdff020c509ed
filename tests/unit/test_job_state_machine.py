"""tasks.services: every transition is atomic, bumps seq, publishes one event after commit,
and refuses to move a job from a state that does not allow it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks import services
from tasks.errors import InvalidParams, JobConflict, JobNotFound, RateLimited, UnknownKind
from tasks.models import Job, JobEvent, JobStatus
from tests.conftest import Published
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]

COUNTDOWN = {"steps": 3}


def submit(user: User, request_id: str = "r1", params: dict[str, object] | None = None) -> Job:
    job, created = services.submit(user, request_id, "demo.countdown", params or COUNTDOWN)
    assert created
    return job


def test_submit_records_the_job_then_queues_it_after_commit(
    user: User, published: Published, sent_tasks: SentTasks
) -> None:
    job = submit(user)
    # Born queued in the submit's one transaction: its first two events are written with it.
    assert job.seq == 2 and job.status == JobStatus.QUEUED
    timeline = list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", "event"))
    assert timeline == [(1, "job.accepted"), (2, "job.queued")]
    assert published.types() == ["job.queued"]
    group, message = published[0]
    assert group == f"user.{user.pk}"
    assert message["job"]["seq"] == 2 and message["job"]["id"] == str(job.pk)
    assert sent_tasks == [{"name": "demo.countdown", "args": [str(job.pk)], "task_id": job.celery_task_id}]


def test_the_same_request_id_returns_the_same_job_and_starts_nothing(
    user: User, published: Published, sent_tasks: SentTasks
) -> None:
    job = submit(user)
    again, created = services.submit(user, "r1", "demo.countdown", {"steps": 99})
    assert not created and again.pk == job.pk
    assert len(sent_tasks) == 1 and published.types() == ["job.queued"]


def test_request_ids_are_per_user(user: User, other_user: User) -> None:
    mine = submit(user, "same")
    theirs = submit(other_user, "same")
    assert mine.pk != theirs.pk


def test_unknown_kinds_and_bad_params_are_refused_before_anything_is_stored(user: User) -> None:
    with pytest.raises(UnknownKind):
        services.submit(user, "r1", "no.such.kind", {})
    with pytest.raises(InvalidParams) as excinfo:
        services.submit(user, "r2", "demo.countdown", {"steps": 0, "interval_ms": "fast", "extra": 1})
    assert set(excinfo.value.details or {}) == {"steps", "interval_ms", "extra"}
    with pytest.raises(InvalidParams) as excinfo:
        services.submit(user, "r3", "demo.countdown", {"steps": 2, "fail_at": 5})
    assert excinfo.value.details == {"fail_at": "fail_at must not exceed steps"}
    assert not Job.objects.exists()


def test_a_job_runs_through_start_progress_and_success_with_growing_seq(user: User, published: Published) -> None:
    job = submit(user)
    assert services.start(str(job.pk), job.celery_task_id) is not None
    assert services.save_progress(str(job.pk), {"current": 1, "total": 3, "percent": 33.3, "stage": "", "message": ""})
    done = services.succeed(str(job.pk), {"steps": 3}, None)
    assert done is not None and done.status == JobStatus.SUCCEEDED and done.finished_at is not None
    assert published.types() == ["job.queued", "job.started", "job.progress", "job.succeeded"]
    assert published.seqs() == [2, 3, 4, 5]
    assert published[-1][1]["job"]["progress"]["current"] == 1


def test_only_the_current_attempts_task_may_claim_a_job(user: User) -> None:
    job = submit(user)
    assert services.start(str(job.pk), "some-other-task") is None
    assert services.start(str(job.pk), job.celery_task_id) is not None
    # The same task redelivered after its worker died may claim the running job again.
    assert services.start(str(job.pk), job.celery_task_id) is not None


def test_finished_jobs_do_not_move_backwards(user: User, published: Published) -> None:
    job = submit(user)
    services.start(str(job.pk), job.celery_task_id)
    services.succeed(str(job.pk), {}, None)
    before = len(published)
    assert services.save_progress(str(job.pk), {"current": 9}) is False
    assert services.fail(str(job.pk), "x", "y") is None
    assert services.succeed(str(job.pk), {}, None) is None
    assert services.start(str(job.pk), job.celery_task_id) is None
    assert len(published) == before


def test_cancel_a_queued_job_revokes_its_task(user: User, published: Published, sent_tasks: SentTasks) -> None:
    job = submit(user)
    cancelled = services.cancel(user, str(job.pk))
    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    assert published.types()[-1] == "job.cancelled"
    assert sent_tasks.revoked == [job.celery_task_id]
    # Its task, arriving late, finds nothing to run.
    assert services.start(str(job.pk), job.celery_task_id) is None


def test_cancel_a_running_job_stops_its_progress(user: User) -> None:
    job = submit(user)
    services.start(str(job.pk), job.celery_task_id)
    services.cancel(user, str(job.pk))
    assert services.save_progress(str(job.pk), {"current": 2}) is False
    assert services.succeed(str(job.pk), {}, None) is None


def test_cancel_a_finished_job_is_a_conflict(user: User) -> None:
    job = submit(user)
    services.cancel(user, str(job.pk))
    with pytest.raises(JobConflict):
        services.cancel(user, str(job.pk))


def test_retry_queues_a_new_attempt_with_a_new_task(user: User, published: Published, sent_tasks: SentTasks) -> None:
    job = submit(user)
    services.start(str(job.pk), job.celery_task_id)
    services.fail(str(job.pk), "demo_failure", "boom")
    retried = services.retry(user, str(job.pk))
    assert retried.status == JobStatus.QUEUED and retried.attempt == 2
    assert retried.error is None and retried.result is None and retried.started_at is None
    assert retried.celery_task_id != job.celery_task_id
    assert sent_tasks[-1]["task_id"] == retried.celery_task_id
    assert published.types()[-1] == "job.queued" and published[-1][1]["job"]["attempt"] == 2
    # The first attempt's task can no longer claim it.
    assert services.start(str(job.pk), job.celery_task_id) is None


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED])
def test_retry_is_only_for_failed_or_cancelled_jobs(user: User, status: str) -> None:
    job = submit(user)
    Job.objects.filter(pk=job.pk).update(status=status)
    with pytest.raises(JobConflict):
        services.retry(user, str(job.pk))


def test_someone_elses_job_and_a_missing_job_look_the_same(user: User, other_user: User) -> None:
    queued = submit(other_user)  # what a cancel would move
    cancelled = services.cancel(other_user, str(submit(other_user, "r2").pk))  # what a retry would move
    before = {job.pk: stored_state(job.pk) for job in (queued, cancelled)}
    for job_id in (str(queued.pk), str(cancelled.pk), str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(JobNotFound) as excinfo:
            services.cancel(user, job_id)
        assert excinfo.value.message == "No such job."
        with pytest.raises(JobNotFound):
            services.retry(user, job_id)
    # Read again from the database: neither of their jobs moved.
    assert {pk: stored_state(pk) for pk in before} == before


def stored_state(job_id: uuid.UUID) -> dict[str, Any]:
    """What any transition changes, as the database has it now."""
    return dict(Job.objects.filter(pk=job_id).values("status", "seq", "attempt", "celery_task_id", "updated_at").get())


def test_snapshot_lists_unfinished_jobs_then_recent_finished_ones(user: User, other_user: User) -> None:
    finished = []
    for n in range(25):
        job = submit(user, f"done-{n}")
        services.cancel(user, str(job.pk))
        finished.append(job.pk)
    running = submit(user, "running")
    services.start(str(running.pk), running.celery_task_id)
    queued = submit(user, "queued")
    submit(other_user, "theirs")
    jobs = services.snapshot(user, 20)
    assert [job.pk for job in jobs[:2]] == [queued.pk, running.pk]
    assert [job.pk for job in jobs[2:]] == list(reversed(finished))[:20]


def test_a_resend_is_answered_with_its_job_even_with_params_now_invalid(
    user: User, published: Published, sent_tasks: SentTasks
) -> None:
    """The request_id is not looked up before the insert: a refusal must still answer a resend with its job."""
    job = submit(user)
    again, created = services.submit(user, "r1", "demo.countdown", {"steps": 0})
    assert not created and again.pk == job.pk
    with pytest.raises(UnknownKind):
        services.submit(user, "r1-new", "no.such.kind", {})


def test_a_resend_is_answered_with_its_job_even_at_the_active_jobs_cap(
    user: User, settings: Any, sent_tasks: SentTasks
) -> None:
    settings.JOBS_MAX_ACTIVE_PER_USER = 1
    job = submit(user)
    again, created = services.submit(user, "r1", "demo.countdown", COUNTDOWN)
    assert not created and again.pk == job.pk
    with pytest.raises(RateLimited):
        services.submit(user, "r2", "demo.countdown", COUNTDOWN)
    assert Job.objects.filter(owner=user).count() == 1
