"""Upload names are display names only: hostile names are cleaned, and never reach the stored path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from tests.fixtures.uploads import files_under, multipart
from uploads.models import Upload
from uploads.names import display_name


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\config", "config"),
        ("/absolute/path/data.txt", "data.txt"),
        ("evil\x00.txt", "evil.txt"),
        ("tab\there\r\nnewline", "tabherenewline"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override would show "exe.jpg"
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # NFC: e + combining acute is é
        ("  spaced.txt  ", "spaced.txt"),
        ("", "upload"),
        ("..", "upload"),
        ("dir/", "upload"),
        ("\x00\x01", "upload"),
    ],
)
def test_display_name(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


def test_a_long_name_is_cut_to_255_keeping_the_extension() -> None:
    name = display_name("x" * 300 + ".csv")
    assert len(name) == 255 and name.endswith("xxx.csv")


def test_a_long_name_without_a_real_extension_is_cut_plainly() -> None:
    assert display_name("a." + "b" * 300) == ("a." + "b" * 300)[:255]


@pytest.fixture
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"../../etc/passwd", "passwd"),
        (b"..\\..\\boot.ini", "boot.ini"),
        (b"evil\x00name.txt", "evilname.txt"),
        ("x" * 300 + ".txt", "x" * 251 + ".txt"),
        ("r\u00e9sum\u00e9.pdf", "r\u00e9sum\u00e9.pdf"),
    ],
)
def test_hostile_names_through_the_endpoint_never_touch_the_path(
    user: User, media: Path, raw: str | bytes, shown: str
) -> None:
    client = Client()
    client.force_login(user)
    body, content_type = multipart(raw, b"content")
    response = client.post("/api/uploads/", body, content_type=content_type)
    assert response.status_code == 201, response.content
    assert response.json()["name"] == shown
    upload = Upload.objects.get()
    assert re.fullmatch(rf"uploads/\d{{4}}/\d{{2}}/{upload.pk}", str(upload.file.name))
    assert files_under(media) == [Path(upload.file.path)]
