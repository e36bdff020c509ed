"""file.process params: strict, and the upload must exist and belong to the submitter (the same words otherwise)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from tasks import services
from tasks.errors import InvalidParams
from tests.fixtures.uploads import stored_upload
from uploads.models import Upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload(settings: Settings, tmp_path: Path, user: User) -> Upload:
    settings.MEDIA_ROOT = tmp_path
    return stored_upload(user, b"hello")


def submit(user: User, params: dict[str, Any]) -> dict[str, Any]:
    job, _ = services.submit(user, uuid.uuid4().hex, "file.process", params)
    stored: dict[str, Any] = job.params
    return stored


def refusal(user: User, params: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(InvalidParams) as caught:
        submit(user, params)
    assert caught.value.details is not None
    return caught.value.details


def test_the_owner_may_process_their_upload(user: User, upload: Upload) -> None:
    params = submit(user, {"upload_id": str(upload.pk), "operation": "checksum"})
    assert params == {"upload_id": str(upload.pk), "operation": "checksum"}


def test_another_users_upload_is_invalid_params(other_user: User, upload: Upload) -> None:
    details = refusal(other_user, {"upload_id": str(upload.pk), "operation": "checksum"})
    assert details == {"upload_id": "No such upload."}


def test_a_missing_upload_gets_the_same_words(user: User, upload: Upload) -> None:
    details = refusal(user, {"upload_id": str(uuid.uuid4()), "operation": "checksum"})
    assert details == {"upload_id": "No such upload."}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"upload_id": "not-a-uuid", "operation": "checksum"}, "upload_id"),
        ({"upload_id": 42, "operation": "checksum"}, "upload_id"),
        ({"operation": "checksum"}, "upload_id"),
        ({"upload_id": "UPLOAD", "operation": "resize"}, "operation"),
        ({"upload_id": "UPLOAD", "operation": "checksum", "path": "/etc/passwd"}, "path"),
    ],
)
def test_malformed_params_name_the_field(user: User, upload: Upload, params: dict[str, Any], field: str) -> None:
    params = {key: str(upload.pk) if value == "UPLOAD" else value for key, value in params.items()}
    assert field in refusal(user, params)
