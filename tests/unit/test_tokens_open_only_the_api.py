"""SECURITY.md's promises about personal API tokens over HTTP: a valid token never opens the admin,
and a request carrying a token is judged by the token alone, never by a session beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import tokens
from tests.fixtures.uploads import files_under
from uploads.models import Upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


def test_a_valid_token_on_the_admin_gets_the_login_page(superuser: User) -> None:
    _, raw = tokens.create(superuser, "script")
    response = Client().get("/admin/", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_wrong_token_beside_a_valid_session_is_anonymous(user: User, settings: Settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path
    tokens.create(user, "script")
    browser = Client()
    browser.force_login(user)
    files = {"file": SimpleUploadedFile("a.txt", b"hello")}
    response = browser.post("/api/uploads/", files, headers={"Authorization": "Bearer jobs_wrong"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    assert not Upload.objects.exists() and files_under(tmp_path) == []
    # The session alone still works: it was the token that made the request anonymous.
    response = browser.post("/api/uploads/", {"file": SimpleUploadedFile("a.txt", b"hello")})
    assert response.status_code == 201
