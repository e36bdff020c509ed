"""What reaches the broker, and so Flower, is the job's id: recipients, subjects, bodies and file
names stay in the database. Checked on what is handed to Celery, args and kwargs alike."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import services
from tests.fixtures.uploads import stored_upload
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def test_an_email_job_sends_only_its_id(user: User, sent_tasks: SentTasks) -> None:
    params = {"to": ["ada.lovelace@example.com"], "subject": "Your diagnosis", "body": "Private and confidential."}
    job, _ = services.submit(user, "r1", "email.send", params)
    assert sent_tasks == [{"name": sent_tasks[0]["name"], "args": [str(job.pk)], "task_id": job.celery_task_id}]
    sent = json.dumps(sent_tasks)
    assert not any(secret in sent for secret in ("ada.lovelace", "diagnosis", "confidential"))


def test_a_file_job_sends_only_its_id(user: User, sent_tasks: SentTasks, settings: Settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path
    upload = stored_upload(user, b"name,salary\nada,100\n", name="salaries-2026.csv")
    job, _ = services.submit(
        user, uuid.uuid4().hex, "file.process", {"upload_id": str(upload.pk), "operation": "csv.summary"}
    )
    [task] = sent_tasks
    assert task["args"] == [str(job.pk)] and "kwargs" not in task
    assert "salaries" not in json.dumps(sent_tasks)
