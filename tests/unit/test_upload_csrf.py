"""A session upload needs Django's CSRF token, as any form post does; a refusal is JSON and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from tests.fixtures.uploads import files_under
from uploads.models import Upload

pytestmark = pytest.mark.django_db
URL = "/api/uploads/"
TOKEN = "a" * 32  # a CSRF secret, as the csrftoken cookie carries it


@pytest.fixture
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


@pytest.fixture
def browser(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = TOKEN
    return client


def test_without_the_token_the_upload_is_refused_with_403_json(browser: Client, media: Path) -> None:
    response = browser.post(URL, {"file": SimpleUploadedFile("a.txt", b"hello")})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert not Upload.objects.exists()
    assert files_under(media) == [], "the received file was deleted"


def test_with_a_wrong_token_the_upload_is_refused(browser: Client, media: Path) -> None:
    response = browser.post(URL, {"file": SimpleUploadedFile("a.txt", b"hello")}, headers={"X-CSRFToken": "b" * 32})
    assert response.status_code == 403
    assert not Upload.objects.exists()


def test_with_the_token_in_the_header_the_upload_is_stored(browser: Client, media: Path) -> None:
    response = browser.post(URL, {"file": SimpleUploadedFile("a.txt", b"hello")}, headers={"X-CSRFToken": TOKEN})
    assert response.status_code == 201
    assert Upload.objects.get().size == 5


def test_with_the_token_as_a_form_field_the_upload_is_stored(browser: Client, media: Path) -> None:
    data = {"csrfmiddlewaretoken": TOKEN, "file": SimpleUploadedFile("a.txt", b"hello")}
    assert browser.post(URL, data).status_code == 201
