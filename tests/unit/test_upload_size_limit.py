"""Uploads over UPLOAD_MAX_BYTES get 413 JSON, and leave nothing on disk, whichever check catches them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from tests.fixtures.uploads import files_under
from uploads.handlers import MULTIPART_OVERHEAD
from uploads.models import Upload

pytestmark = pytest.mark.django_db
URL = "/api/uploads/"
LIMIT = 1000


@pytest.fixture
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_MAX_BYTES = LIMIT
    return tmp_path / "media"


@pytest.fixture
def client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, size: int) -> tuple[int, dict[str, Any]]:
    response = client.post(URL, {"file": SimpleUploadedFile("big.bin", b"x" * size)})
    return response.status_code, response.json()


def test_a_file_of_exactly_the_limit_is_accepted(client: Client, media: Path) -> None:
    status, body = upload(client, LIMIT)
    assert status == 201 and body["size"] == LIMIT


def test_one_byte_over_is_stopped_while_streaming(client: Client, media: Path) -> None:
    # Content-Length is within the multipart allowance, so the handler's byte count catches it.
    status, body = upload(client, LIMIT + 1)
    assert status == 413
    assert body["error"] == {"code": "too_large", "message": "The file is larger than the limit of 1,000 bytes."}
    assert not Upload.objects.exists()
    assert files_under(media) == [], "the partial temporary file was deleted"


def test_a_content_length_far_over_is_refused_before_reading(client: Client, media: Path) -> None:
    status, body = upload(client, LIMIT + MULTIPART_OVERHEAD + 1)
    assert status == 413 and body["error"]["code"] == "too_large"
    assert not Upload.objects.exists()
    assert files_under(media) == [], "nothing was even written"


def test_the_limit_counts_every_file_part_not_only_the_kept_one(client: Client, media: Path) -> None:
    files = {"file": SimpleUploadedFile("a.bin", b"a" * 600), "other": SimpleUploadedFile("b.bin", b"b" * 600)}
    response = client.post(URL, files)
    assert response.status_code == 413
    assert files_under(media) == []
