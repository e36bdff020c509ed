"""An unhandled error in a view answers 500 with an error id (JSON under /api/) and logs that id once."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from pytest_django.fixtures import Settings

from core import urls


def broken(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("a bug")


# This module is the URLconf of these tests: the service's routes and error handler, and two broken views.
urlpatterns = [path("api/broken", broken), path("broken", broken), *urls.urlpatterns]
handler500 = urls.handler500

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(settings: Settings) -> Client:
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False
    return Client(raise_request_exception=False)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_an_api_error_answers_json_with_an_id_that_the_log_line_has(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/api/broken")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "internal"
    assert error["error_id"] in error["message"]
    assert "ZeroDivisionError" not in response.content.decode()  # the client never sees the exception
    [record] = errors(caplog)  # one line: Django does not log the same 500 again
    assert record.error_id == error["error_id"]  # type: ignore[attr-defined]
    assert (record.event, record.path, record.method) == ("http.error", "/api/broken", "GET")  # type: ignore[attr-defined]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert error["error_id"] in record.getMessage()


def test_a_page_error_answers_html_with_the_id(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/broken")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    [record] = errors(caplog)
    assert f"<code>{record.error_id}</code>" in response.content.decode()  # type: ignore[attr-defined]


def test_each_error_gets_its_own_id(client: Client) -> None:
    first, second = (client.get("/api/broken").json()["error"]["error_id"] for _ in range(2))
    assert first != second
