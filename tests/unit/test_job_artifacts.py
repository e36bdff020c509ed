"""A job's result files: written through Context.artifact, listed on the job, downloaded by its owner only,
and deleted with the job (retention) or when it is retried."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks, Settings

from accounts import tokens
from tasks import runner, services
from tasks.artifacts import ArtifactWriter
from tasks.housekeeping import purge_finished_jobs
from tasks.models import Artifact, Job, JobStatus
from tests.fixtures.uploads import files_under

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def finished_table(user: User, rows: int = 3) -> Job:
    job, _ = services.submit(user, f"table-{rows}", "test.table", {"rows": rows})
    runner.run_job(str(job.pk), job.celery_task_id)
    return Job.objects.get(pk=job.pk)


def download(client: Client, artifact: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/artifacts/{artifact['id']}/", headers=headers)


def test_a_kind_s_artifact_is_stored_and_listed_on_the_job(user: User, media_root: Path) -> None:
    job = finished_table(user)
    assert job.status == JobStatus.SUCCEEDED, job.error
    (listed,) = job.artifacts
    content = b"n,square\n1,1\n2,4\n3,9\n"
    assert listed == {"id": listed["id"], "name": "squares.csv", "size": len(content), "content_type": "text/csv"}
    stored = Artifact.objects.get(pk=listed["id"])
    with stored.file.open("rb") as file:
        assert file.read() == content
    assert files_under(media_root / "artifacts") == [Path(stored.file.path)]  # the temporary file was moved


def test_the_owner_downloads_it_as_an_attachment_with_a_session_or_a_token(user: User, client: Client) -> None:
    (artifact,) = finished_table(user).artifacts
    client.force_login(user)
    response = download(client, artifact)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="squares.csv"'
    assert response["Content-Type"] == "text/csv"
    assert b"".join(response.streaming_content) == b"n,square\n1,1\n2,4\n3,9\n"
    _, raw = tokens.create(user, "script")
    assert download(Client(), artifact, raw).status_code == 200


def test_anyone_else_gets_the_404_of_an_artifact_that_does_not_exist(
    user: User, other_user: User, client: Client
) -> None:
    (artifact,) = finished_table(user).artifacts
    client.force_login(other_user)
    refused = download(client, artifact)
    missing = client.get("/api/artifacts/00000000-0000-0000-0000-000000000000/")
    assert refused.status_code == missing.status_code == 404
    assert refused.json() == missing.json()
    assert download(Client(), artifact).status_code == 404  # not logged in
    _, raw = tokens.create(other_user, "script")
    assert download(Client(), artifact, raw).status_code == 404


def test_a_block_that_fails_leaves_no_artifact_and_no_file(user: User, media_root: Path) -> None:
    job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})

    def write_half() -> None:
        with ArtifactWriter(str(job.pk)).open("half.csv", "text/csv") as out:
            out.write(b"half of it")
            raise RuntimeError("the kind failed while writing")

    with pytest.raises(RuntimeError):
        write_half()
    assert not Artifact.objects.exists()
    assert Job.objects.get(pk=job.pk).artifacts == []
    assert files_under(media_root) == []


def test_names_and_content_types_are_cleaned_for_the_download_header(user: User, client: Client) -> None:
    job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
    with ArtifactWriter(str(job.pk)).open('../../etc/"passwd"\r\n.csv', "text/csv\r\nX-Evil: 1") as out:
        out.write(b"x")
    artifact = Artifact.objects.get()
    assert artifact.name == '"passwd".csv' and artifact.content_type == "application/octet-stream"
    client.force_login(user)
    response = download(client, artifact.payload())
    assert response["Content-Disposition"] == 'attachment; filename="\\"passwd\\".csv"'
    assert "X-Evil" not in response


def test_retention_deletes_a_job_s_artifacts_and_their_files(
    user: User, media_root: Path, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    old = finished_table(user, rows=2)
    kept = finished_table(user, rows=4)
    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=60))
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_finished_jobs(timezone.now()).jobs == 1
    assert list(Artifact.objects.values_list("job_id", flat=True)) == [kept.pk]
    assert files_under(media_root / "artifacts") == [Path(Artifact.objects.get().file.path)]


def test_a_retry_starts_without_the_artifacts_of_the_attempt_before(
    user: User, media_root: Path, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    job = finished_table(user)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        retried = services.retry(user, str(job.pk))
    assert retried.artifacts == [] and Job.objects.get(pk=job.pk).artifacts == []
    assert not Artifact.objects.exists() and files_under(media_root / "artifacts") == []
