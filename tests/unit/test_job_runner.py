"""tasks.runner, called directly as a worker would: claim, run the kind, record the outcome."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks import kinds, runner, services
from tasks.kinds import Context
from tasks.models import Job, JobStatus
from tests.conftest import Published

pytestmark = pytest.mark.django_db(transaction=True)


def submitted(user: User, params: dict[str, Any]) -> Job:
    job, _ = services.submit(user, "r", "demo.countdown", params)
    return job


def run(job: Job) -> Job:
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_a_countdown_succeeds_with_its_result_and_final_progress(user: User, published: Published) -> None:
    job = run(submitted(user, {"steps": 50}))
    assert job.status == JobStatus.SUCCEEDED and job.result == {"steps": 50}
    assert job.progress["current"] == 50 and job.progress["percent"] == 100.0
    types = published.types()
    # Progress frames only if the run outlived the interval job.started opened; the final event carries it.
    assert types[:2] == ["job.queued", "job.started"] and types[-1] == "job.succeeded"
    assert set(types[2:-1]) <= {"job.progress"}
    assert published.seqs() == sorted(set(published.seqs()))


def test_fail_at_ends_the_job_failed_with_demo_failure(user: User, published: Published) -> None:
    job = run(submitted(user, {"steps": 10, "fail_at": 4}))
    assert job.status == JobStatus.FAILED
    assert job.error == {"code": "demo_failure", "message": "Failed at step 4, as requested by fail_at."}
    assert job.progress["current"] == 3
    assert published.types()[-1] == "job.failed"


def test_a_task_of_a_cancelled_job_runs_nothing(user: User, published: Published) -> None:
    job = submitted(user, {"steps": 10})
    services.cancel(user, str(job.pk))
    assert run(job).status == JobStatus.CANCELLED
    assert "job.started" not in published.types()


def test_an_unexpected_error_is_stored_as_internal_and_raised_for_celery(
    user: User, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(context: Context[Any]) -> dict[str, Any]:
        raise KeyError("secret internals")

    monkeypatch.setitem(kinds._KINDS, "demo.countdown", replace(kinds.get("demo.countdown"), run=broken))
    job = submitted(user, {"steps": 1})
    with pytest.raises(KeyError):
        runner.run_job(str(job.pk), job.celery_task_id)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == {"code": "internal", "message": "The job failed because of an internal error."}


def test_params_that_are_no_longer_valid_fail_the_job_with_invalid_params(user: User, published: Published) -> None:
    job = submitted(user, {"steps": 3})
    Job.objects.filter(pk=job.pk).update(params={"steps": 0})  # what it refers to changed since
    job = run(job)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "invalid_params"
    assert "steps" in job.error["message"]
