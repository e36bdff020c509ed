"""A file.process job cancelled while it runs stops at its next progress report, not at the end of the file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import runner, services
from tasks.models import JobStatus
from tests.fixtures.uploads import stored_upload
from transport.publisher import publisher
from uploads.operations.base import CHUNK_BYTES

pytestmark = pytest.mark.django_db(transaction=True)

CHUNKS = 8
# Valid for all three operations: CSV with a header, UTF-8 text.
CONTENT = b"a,b\n" + b"1,2\n" * (CHUNKS * CHUNK_BYTES // 4)


@pytest.fixture(autouse=True)
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.JOBS_PROGRESS_INTERVAL = 0  # every report is stored, so each one sees the cancellation
    return tmp_path / "media"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    monkeypatch.setattr(publisher, "send", lambda group, text: frames.append(json.loads(text)))
    return frames


def cancel_on_first_progress(user: User, sent: list[dict[str, Any]]) -> Callable[[str, str], None]:
    """The owner cancels as soon as the first progress frame reaches them (publishing runs in the runner's thread)."""

    def on_frame(group: str, text: str) -> None:
        frame = json.loads(text)
        sent.append(frame)
        if frame["type"] == "job.progress" and sum(f["type"] == "job.progress" for f in sent) == 1:
            services.cancel(user, frame["job_id"])

    return on_frame


@pytest.mark.parametrize("operation", ["checksum", "csv.summary", "text.stats"])
def test_a_cancelled_job_stops_reading_the_file(
    user: User, sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    monkeypatch.setattr(publisher, "send", cancel_on_first_progress(user, sent))
    stores: list[int] = []
    save_progress = services.save_progress

    def counting_save_progress(job_id: str, progress: dict[str, Any]) -> bool:
        stores.append(progress["current"])
        return save_progress(job_id, progress)

    monkeypatch.setattr(services, "save_progress", counting_save_progress)
    upload = stored_upload(user, CONTENT)
    params = {"upload_id": str(upload.pk), "operation": operation}
    job, _ = services.submit(user, uuid.uuid4().hex, "file.process", params)

    runner.run_job(str(job.pk), job.celery_task_id)

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.result is None
    # The first report went out, the cancel came, and the second report stopped the job.
    assert stores == [CHUNK_BYTES, 2 * CHUNK_BYTES]
    assert job.progress["current"] == CHUNK_BYTES
    types = [frame["type"] for frame in sent if frame["type"] != "job.log"]  # log lines go to followers
    assert types[-2:] == ["job.progress", "job.cancelled"] and "job.succeeded" not in types
