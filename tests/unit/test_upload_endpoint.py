"""POST /api/uploads/ stores the file under a generated name inside MEDIA_ROOT and answers its id, name and size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from tests.fixtures.uploads import files_under, multipart
from uploads.models import Upload

pytestmark = pytest.mark.django_db
URL = "/api/uploads/"


@pytest.fixture
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


@pytest.fixture
def client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_file_is_stored_under_a_generated_name_and_answered(client: Client, user: User, media: Path) -> None:
    content = b"id,name\n1,Ada\n" * 1000
    response = client.post(URL, {"file": SimpleUploadedFile("report.csv", content)})
    assert response.status_code == 201, response.content
    body = response.json()
    upload = Upload.objects.get(pk=body["id"])
    assert body == {"id": str(upload.pk), "name": "report.csv", "size": len(content)}
    assert upload.owner == user
    stored = Path(upload.file.path)
    assert re.fullmatch(rf"uploads/\d{{4}}/\d{{2}}/{upload.pk}", str(upload.file.name))
    assert stored.is_relative_to(media) and stored.read_bytes() == content
    assert files_under(media) == [stored], "the temporary file was moved, not copied"


def test_an_empty_file_is_refused_and_nothing_is_kept(client: Client, media: Path) -> None:
    response = client.post(URL, {"file": SimpleUploadedFile("empty.txt", b"")})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_file"
    assert not Upload.objects.exists() and files_under(media) == []


def test_a_request_without_the_file_field_is_refused(client: Client, media: Path) -> None:
    body, content_type = multipart("notes.txt", b"hello", field="attachment")
    response = client.post(URL, body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "empty_file", "message": 'Send one file in the multipart field "file".'}
    assert files_under(media) == []


def test_an_anonymous_request_gets_401_json_not_a_redirect(media: Path) -> None:
    response = Client().post(URL, {"file": SimpleUploadedFile("a.txt", b"data")})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_authenticated"
    assert files_under(media) == []


def test_other_methods_get_405_with_allow(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_broken_multipart_body_is_a_400(client: Client, media: Path) -> None:
    response = client.post(URL, b"--x\r\nnot really", content_type="multipart/form-data; boundary=")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
