"""tasks.runner: a run whose outcome cannot be written while the database is unreachable writes it once the
database answers again, within JOBS_OUTCOME_RETRY_SECONDS; it never leaves its job running for good."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from pytest_django.fixtures import Settings

from tasks import runner, services
from tasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """services.succeed fails as with the database down for the first `outages[0]` calls; the calls made."""
    calls: list[int] = []
    outages = [2]
    succeed = services.succeed

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= outages[0]:
            raise OperationalError("server closed the connection unexpectedly")
        return succeed(*args, **kwargs)

    monkeypatch.setattr(services, "succeed", flaky)
    monkeypatch.setattr(runner, "_pause", lambda seconds: None)
    return calls


def run(user: User) -> Job:
    job, _ = services.submit(user, "r", "demo.countdown", {"steps": 3})
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_the_outcome_is_written_when_the_database_answers_again(user: User, unreachable: list[int]) -> None:
    job = run(user)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result is not None
    assert len(unreachable) == 3  # two refused, the third written


def test_past_the_bound_the_error_is_raised(user: User, unreachable: list[int], settings: Settings) -> None:
    settings.JOBS_OUTCOME_RETRY_SECONDS = 0
    with pytest.raises(OperationalError):
        run(user)
    assert len(unreachable) == 1


def test_other_errors_are_not_tried_again(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(services, "succeed", broken)
    with pytest.raises(ValueError, match="a bug"):
        run(user)
    assert len(calls) == 1
