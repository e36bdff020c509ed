"""file.process progress reads well at every file size: bytes, KB, MB or GB, never "0.0 of 0.0 MB"."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import runner, services
from tests.conftest import Published
from tests.fixtures.uploads import stored_upload
from uploads.operations import progress_text


@pytest.mark.parametrize(
    ("done", "total", "text"),
    [
        (0, 0, "0 of 0 bytes"),
        (1, 1, "1 of 1 byte"),
        (0, 12, "0 of 12 bytes"),
        (512, 949, "512 of 949 bytes"),
        (0, 999, "0.0 of 1.0 KB"),
        (300, 4_200, "0.3 of 4.2 KB"),
        (65_536, 180_000, "65.5 of 180.0 KB"),
        (500_000, 999_999, "0.5 of 1.0 MB"),
        (1_048_576, 2_097_152, "1.0 of 2.1 MB"),
        (12_000_000, 48_000_000, "12.0 of 48.0 MB"),
        (104_857_600, 104_857_600, "104.9 of 104.9 MB"),
        (1_500_000_000, 3_000_000_000, "1.5 of 3.0 GB"),
    ],
)
def test_done_and_total_share_a_unit_that_fits_the_total(done: int, total: int, text: str) -> None:
    assert progress_text(done, total) == text


@pytest.mark.parametrize("total", [1, 10, 100, 999, 1_000, 12_345, 999_999, 1_000_000, 5 * 2**20, 10**9])
def test_a_file_that_is_not_empty_never_shows_a_total_of_zero(total: int) -> None:
    shown_total = progress_text(0, total).split(" of ")[1].split()[0]
    assert float(shown_total.replace(",", "")) > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["csv.summary", "text.stats", "checksum"])
def test_a_tiny_file_reports_its_progress_in_bytes(
    user: User, published: Published, settings: Settings, tmp_path: Path, operation: str
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.JOBS_PROGRESS_INTERVAL = 0  # every report is stored and published
    upload = stored_upload(user, b"name,size\nada,3\nbob,4\n")  # 22 bytes
    params = {"upload_id": str(upload.pk), "operation": operation}
    job, _ = services.submit(user, uuid.uuid4().hex, "file.process", params)
    runner.run_job(str(job.pk), job.celery_task_id)
    messages = [message["progress"]["message"] for _, message in published if message["type"] == "job.progress"]
    assert messages == ["22 of 22 bytes"]
