"""reports.jobs_csv: the owner's jobs created in a range of days, filtered by kind and status, as a CSV artifact,
with progress by rows and a log line per 10,000 rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from reports import jobs as export
from tasks import runner, services
from tasks.errors import InvalidParams
from tasks.models import Artifact, Job, JobLogLine, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def job(owner: User, kind: str, status: str, created: str, error: dict[str, str] | None = None) -> Job:
    made = Job.objects.create(owner=owner, request_id=f"r{Job.objects.count()}", kind=kind, status=status, error=error)
    Job.objects.filter(pk=made.pk).update(created_at=datetime.fromisoformat(created).replace(tzinfo=UTC))
    return made


def run_export(owner: User, **params: object) -> tuple[Job, list[dict[str, str]]]:
    submitted, _ = services.submit(owner, f"export-{Job.objects.count()}", "reports.jobs_csv", params)
    runner.run_job(str(submitted.pk), submitted.celery_task_id)
    done = Job.objects.get(pk=submitted.pk)
    assert done.status == JobStatus.SUCCEEDED, done.error
    (listed,) = done.artifacts
    with Artifact.objects.get(pk=listed["id"]).file.open("rb") as stored:
        text = stored.read().decode()
    return done, list(csv.DictReader(io.StringIO(text)))


def test_the_owner_s_jobs_of_the_days_asked_for_oldest_first(user: User, other_user: User) -> None:
    before = job(user, "demo.countdown", "succeeded", "2026-03-31T23:59:59")
    first = job(user, "email.send", "failed", "2026-04-01T00:00:00", {"code": "smtp", "message": "Refused"})
    last = job(user, "demo.countdown", "succeeded", "2026-04-02T23:59:59")
    job(user, "demo.countdown", "succeeded", "2026-04-03T00:00:00")
    job(other_user, "demo.countdown", "succeeded", "2026-04-01T12:00:00")

    done, rows = run_export(user, created_after="2026-04-01", created_before="2026-04-02")
    assert [row["id"] for row in rows] == [str(first.pk), str(last.pk)]
    assert rows[0]["kind"] == "email.send" and rows[0]["error_code"] == "smtp" and rows[0]["error"] == "Refused"
    assert rows[0]["created_at"] == "2026-04-01T00:00:00+00:00"
    assert str(before.pk) not in {row["id"] for row in rows}
    assert done.result == {"rows": 2}
    assert done.artifacts[0]["name"] == "jobs-2026-04-01-to-2026-04-02.csv"
    assert done.progress["current"] == done.progress["total"] == 2


def test_kind_and_status_filters_narrow_it(user: User) -> None:
    wanted = job(user, "email.send", "failed", "2026-04-01T10:00:00")
    job(user, "email.send", "succeeded", "2026-04-01T10:00:00")
    job(user, "demo.countdown", "failed", "2026-04-01T10:00:00")
    _, rows = run_export(
        user, created_after="2026-04-01", created_before="2026-04-01", kinds=["email.send"], statuses=["failed"]
    )
    assert [row["id"] for row in rows] == [str(wanted.pk)]


def test_text_a_spreadsheet_would_run_as_a_formula_is_quoted(user: User) -> None:
    job(user, "email.send", "failed", "2026-04-01T10:00:00", {"code": "x", "message": "=HYPERLINK(1)"})
    _, rows = run_export(user, created_after="2026-04-01", created_before="2026-04-01")
    assert rows[0]["error"] == "'=HYPERLINK(1)"


def test_a_log_line_per_ten_thousand_rows(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "LOG_EVERY", 2)
    for hour in range(5):
        job(user, "demo.countdown", "succeeded", f"2026-04-01T{hour:02}:00:00")
    done, rows = run_export(user, created_after="2026-04-01", created_before="2026-04-01")
    lines = list(JobLogLine.objects.filter(job=done).values_list("text", flat=True))
    assert lines == ["Exporting 5 jobs.", "2 rows written.", "4 rows written.", "Done: 5 rows."]
    assert len(rows) == 5


def test_a_range_that_ends_before_it_starts_is_refused(user: User) -> None:
    with pytest.raises(InvalidParams) as refused:
        services.submit(user, "r", "reports.jobs_csv", {"created_after": "2026-04-02", "created_before": "2026-04-01"})
    assert refused.value.details == {"params": "The last day comes before the first."}
