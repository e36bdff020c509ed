"""Finished jobs and unneeded uploads (with their files) go after JOBS_RETENTION_DAYS; the rest stays."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks, Settings

from celery_app import app as celery_app
from tasks.housekeeping import Purged, purge_finished_jobs
from tasks.models import EmailDelivery, Job, JobStatus
from tasks.periodic import housekeeping
from tests.fixtures.uploads import files_under, stored_upload
from uploads.models import Upload

pytestmark = pytest.mark.django_db

NOW = timezone.now()
OLD = NOW - timedelta(days=31)
RECENT = NOW - timedelta(days=29)


@pytest.fixture(autouse=True)
def media_root(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    settings.JOBS_RETENTION_DAYS = 30
    return tmp_path


def job(owner: User, status: str, finished_at: datetime | None, **params: str) -> Job:
    return Job.objects.create(
        owner=owner, request_id=f"r{Job.objects.count()}", kind="file.process", status=status, params=params,
        finished_at=finished_at,
    )  # fmt: skip


def upload(owner: User, created_at: datetime) -> Upload:
    made = stored_upload(owner, b"some bytes")
    Upload.objects.filter(pk=made.pk).update(created_at=created_at)
    return made


def purge(captured: DjangoCaptureOnCommitCallbacks) -> Purged:
    # The files go once the deletes commit (uploads.models): run those callbacks too.
    with captured(execute=True):
        return purge_finished_jobs(NOW)


def test_old_finished_jobs_go_and_recent_or_unfinished_ones_stay(
    user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    gone = [job(user, status, OLD) for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)]
    EmailDelivery.objects.create(job=gone[0], recipient="a@example.com", status="sent", attempt=1, message_id="m")
    recent = job(user, JobStatus.SUCCEEDED, RECENT)
    queued = job(user, JobStatus.QUEUED, None)
    running = job(user, JobStatus.RUNNING, None)
    Job.objects.filter(pk__in=[queued.pk, running.pk]).update(created_at=OLD)

    assert purge(django_capture_on_commit_callbacks).jobs == 3
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, queued.pk, running.pk}
    assert not EmailDelivery.objects.exists()


def test_old_uploads_go_with_their_files_unless_an_unfinished_job_names_them(
    user: User, media_root: Path, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    old = upload(user, OLD)
    old_of_finished_job = upload(user, OLD)
    needed = upload(user, OLD)
    recent = upload(user, RECENT)
    job(user, JobStatus.RUNNING, None, upload_id=str(needed.pk), operation="checksum")
    job(user, JobStatus.SUCCEEDED, RECENT, upload_id=str(old_of_finished_job.pk), operation="checksum")
    assert len(files_under(media_root)) == 4

    assert purge(django_capture_on_commit_callbacks).uploads == 2
    assert set(Upload.objects.values_list("pk", flat=True)) == {needed.pk, recent.pk}
    assert {path.name for path in files_under(media_root)} == {str(needed.pk), str(recent.pk)}
    assert not Upload.objects.filter(pk=old.pk).exists()


def test_files_without_an_upload_row_go_once_a_day_old(
    user: User, media_root: Path, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    kept = upload(user, RECENT)
    orphans = media_root / "uploads" / "2026" / "01"
    orphans.mkdir(parents=True)
    stale, fresh = orphans / "stale-orphan", orphans / "fresh-orphan"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")  # may be an upload whose row is being saved right now
    two_days_ago = (NOW - timedelta(days=2)).timestamp()
    os.utime(stale, (two_days_ago, two_days_ago))
    kept_file = Path(kept.file.path)
    os.utime(kept_file, (two_days_ago, two_days_ago))

    assert purge(django_capture_on_commit_callbacks).orphan_files == 1
    assert not stale.exists()
    assert fresh.exists() and kept_file.exists()


def test_the_retention_is_configurable(user: User, settings: Settings) -> None:
    settings.JOBS_RETENTION_DAYS = 60
    job(user, JobStatus.SUCCEEDED, OLD)
    assert purge_finished_jobs(NOW) == Purged(jobs=0, uploads=0, orphan_files=0)


def test_nothing_to_do_is_fine_even_without_a_media_directory(settings: Settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "missing"
    assert purge_finished_jobs(NOW) == Purged(jobs=0, uploads=0, orphan_files=0)


def test_the_periodic_task_is_registered_scheduled_daily_and_runs(user: User) -> None:
    celery_app.loader.import_default_modules()  # what a worker does at start: CELERY_IMPORTS
    assert "jobs.housekeeping" in celery_app.tasks
    entry = next(e for e in celery_app.conf.beat_schedule.values() if e["task"] == "jobs.housekeeping")
    assert entry["schedule"].remaining_estimate(NOW) <= timedelta(days=1)
    job(user, JobStatus.FAILED, NOW - timedelta(days=40))
    assert housekeeping() == {"jobs": 1, "uploads": 0, "orphan_files": 0}
