"""Scripts upload with an API token (accounts' BearerTokenMiddleware): no session, no CSRF token needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import tokens
from tests.fixtures.uploads import files_under
from uploads.models import Upload

pytestmark = pytest.mark.django_db
URL = "/api/uploads/"


@pytest.fixture
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


def post(raw_token: str) -> tuple[int, dict[str, Any]]:
    script = Client(enforce_csrf_checks=True)  # CSRF enforced, as in production
    files = {"file": SimpleUploadedFile("a.txt", b"from a script")}
    response = script.post(URL, files, headers={"Authorization": f"Bearer {raw_token}"})
    return response.status_code, response.json()


def test_a_token_uploads_as_its_user(user: User, media: Path) -> None:
    _, raw = tokens.create(user, "script")
    status, body = post(raw)
    assert status == 201, body
    assert Upload.objects.get(pk=body["id"]).owner == user


def test_a_revoked_token_is_401_and_stores_nothing(user: User, media: Path) -> None:
    token, raw = tokens.create(user, "script")
    tokens.revoke(token)
    status, body = post(raw)
    assert status == 401 and body["error"]["code"] == "not_authenticated"
    assert files_under(media) == []
