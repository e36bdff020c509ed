"""Staff see uploads in the admin, read-only, with the stored path as text; deleting there deletes the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from tests.fixtures.uploads import stored_upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_admin_lists_shows_and_deletes_uploads(
    admin_client: Client, user: User, settings: Settings, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    upload = stored_upload(user, b"hello", name="notes.txt")
    assert b"notes.txt" in admin_client.get("/admin/uploads/upload/").content
    page = admin_client.get(f"/admin/uploads/upload/{upload.pk}/change/").content.decode()
    assert str(upload.file.name) in page and f'href="{upload.file.name}"' not in page
    path = Path(upload.file.path)
    response = admin_client.post(f"/admin/uploads/upload/{upload.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not path.exists()
