"""file.process run as a worker runs it (tasks.runner): results, progress in bytes, and failures a user can act on."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import runner, services
from tasks.models import Job, JobStatus
from tests.conftest import Published
from tests.fixtures.uploads import FIXTURES, stored_upload
from uploads.models import Upload
from uploads.operations.base import CHUNK_BYTES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


def process(user: User, upload: Upload, operation: str) -> Job:
    params = {"upload_id": str(upload.pk), "operation": operation}
    job, _ = services.submit(user, uuid.uuid4().hex, "file.process", params)
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def test_checksum_succeeds_with_the_digests_of_the_bytes(user: User, published: Published) -> None:
    data = os.urandom(3 * CHUNK_BYTES + 5)
    job = process(user, stored_upload(user, data), "checksum")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "size": len(data),
    }
    assert job.progress["current"] == job.progress["total"] == len(data)
    assert job.progress["stage"] == "checksum" and job.progress["percent"] == 100.0
    assert published.types()[-1] == "job.succeeded"


def test_progress_is_reported_in_bytes_with_a_readable_message(
    user: User, published: Published, settings: Settings
) -> None:
    settings.JOBS_PROGRESS_INTERVAL = 0  # every report is stored and published
    data = b"x" * (2 * CHUNK_BYTES)
    process(user, stored_upload(user, data), "checksum")
    progress = [message["progress"] for _, message in published if message["type"] == "job.progress"]
    assert [p["current"] for p in progress] == [CHUNK_BYTES, 2 * CHUNK_BYTES]
    assert progress[0]["message"] == "1.0 of 2.1 MB" and progress[0]["total"] == len(data)


def test_csv_summary_of_the_fixture_succeeds(user: User) -> None:
    job = process(user, stored_upload(user, (FIXTURES / "people.csv").read_bytes()), "csv.summary")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result is not None and job.result["rows"] == 4
    assert [column["type"] for column in job.result["columns"]] == [
        "integer",
        "string",
        "integer",
        "float",
        "boolean",
        "date",
        "string",
    ]


def test_a_bad_csv_fails_with_the_row_it_is_about(user: User, published: Published) -> None:
    job = process(user, stored_upload(user, b"a,b,c,d\n1,2,3,4\n5,6,7\n"), "csv.summary")
    assert job.status == JobStatus.FAILED
    assert job.error == {"code": "bad_csv", "message": "Row 3 has 3 fields, the header has 4."}
    assert published.types()[-1] == "job.failed"


def test_text_stats_of_a_binary_file_fails_as_not_text(user: User) -> None:
    job = process(user, stored_upload(user, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "text.stats")
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "not_text"
    assert "byte offset 0 (line 1)" in job.error["message"]


def test_an_upload_whose_file_is_gone_fails_as_upload_missing(user: User) -> None:
    upload = stored_upload(user, b"hello")
    Path(upload.file.path).unlink()
    job = process(user, upload, "checksum")
    assert job.status == JobStatus.FAILED
    assert job.error == {
        "code": "upload_missing",
        "message": "The uploaded file is no longer on the server; upload it again.",
    }


def test_deleting_an_upload_deletes_its_file(user: User, media: Path) -> None:
    upload = stored_upload(user, b"hello")
    path = Path(upload.file.path)
    upload.delete()
    assert not path.exists()
