"""The Python code blocks of docs/kinds.md run as written, in order, in one namespace, as a team would paste
them: the kinds they declare register, run, and produce what the page says."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from tasks import kinds, runner, services
from tasks.models import Artifact, Job, JobLogLine, JobStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "kinds.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks() -> list[str]:
    return BLOCK.findall(PAGE.read_text())


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))


def run_page(user: User) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "signups.jobs", "user": user}
    for block in blocks():
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks()) == 3


def test_the_page_shows_the_example_app_as_it_is() -> None:
    """The walk-through of reports.jobs_csv is the file itself (its behaviour: test_jobs_csv_export.py)."""
    shown = re.search(r"```py\n(.*?)```", PAGE.read_text(), re.DOTALL)
    assert shown is not None
    assert shown.group(1) == (PAGE.parents[1] / "reports" / "jobs.py").read_text()


def test_the_example_kind_runs_and_writes_its_csv(
    scratch_registry: None, user: User, settings: Settings, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    for days_ago in (0, 0, 3):
        joined = UserFactory.create()
        User.objects.filter(pk=joined.pk).update(date_joined=timezone.now() - timedelta(days=days_ago))
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=40))

    namespace = run_page(user)  # the last block submits and runs signups.per_day for `user`
    assert {"signups.per_day", "signups.busiest_day"} <= set(kinds.names())
    job = Job.objects.get(pk=namespace["job"].pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result == {"days": 2, "users": 3}
    assert kinds.get("signups.per_day").schema["properties"]["days"]["default"] == 30
    with Artifact.objects.get(job=job).file.open("rb") as stored:
        rows = list(csv.reader(io.StringIO(stored.read().decode())))
    assert rows[0] == ["day", "new users"] and [row[1] for row in rows[1:]] == ["1", "2"]
    assert list(JobLogLine.objects.filter(job=job).values_list("text", flat=True)) == ["3 new users in 2 days."]


def test_the_failing_example_fails_with_its_code(
    scratch_registry: None, user: User, settings: Settings, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=40))
    run_page(user)
    job, _ = services.submit(user, "busiest", "signups.busiest_day", {"days": 7})
    runner.run_job(str(job.pk), job.celery_task_id)
    failed = Job.objects.get(pk=job.pk)
    assert failed.status == JobStatus.FAILED
    assert failed.error == {"code": "no_signups", "message": "Nobody signed up in the last 7 days."}
