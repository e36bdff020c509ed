"""Upload over HTTP to Daphne, then file.process over the WebSocket, run by a real Celery worker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.factories import PASSWORD
from tests.fixtures.uploads import multipart
from tests.integration.client import is_terminal_event, jobs_client, login
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def upload(base_url: str, cookie: str, filename: str, content: bytes) -> tuple[int, dict[str, Any]]:
    """POST /api/uploads/ as a browser's script does: session cookie, and the CSRF token in X-CSRFToken."""
    csrf = SimpleCookie(cookie)["csrftoken"].value
    body, content_type = multipart(filename, content)
    headers = {"Cookie": cookie, "X-CSRFToken": csrf, "Content-Type": content_type}
    request = urllib.request.Request(f"{base_url}/api/uploads/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_an_uploaded_file_is_checksummed_by_the_worker(live_stack: LiveStack, user: User) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    status, answer = await asyncio.to_thread(upload, live_stack.base_url, cookie, "../../data.bin", content)
    assert status == 201, answer
    assert answer["name"] == "data.bin" and answer["size"] == len(content)

    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        assert "file.process" in client.hello["kinds"]
        job = await client.submit("file.process", {"upload_id": answer["id"], "operation": "checksum"})
        events = await client.receive_until(is_terminal_event(job["id"]), timeout=60)

    final = events[-1]
    assert final["type"] == "job.succeeded", final
    assert final["job"]["result"] == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "md5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
        "size": len(content),
    }
    assert final["job"]["progress"]["current"] == len(content)


async def test_a_binary_file_fails_text_stats_with_not_text(live_stack: LiveStack, user: User) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    status, answer = await asyncio.to_thread(upload, live_stack.base_url, cookie, "image.png", b"\x89PNG\r\n\x1a\n")
    assert status == 201, answer
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        job = await client.submit("file.process", {"upload_id": answer["id"], "operation": "text.stats"})
        events = await client.receive_until(is_terminal_event(job["id"]), timeout=60)
    assert events[-1]["type"] == "job.failed"
    assert events[-1]["job"]["error"]["code"] == "not_text"


async def test_without_the_csrf_header_daphne_answers_403_json(live_stack: LiveStack, user: User) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    body, content_type = multipart("a.txt", b"hello")
    request = urllib.request.Request(
        f"{live_stack.base_url}/api/uploads/", data=body, headers={"Cookie": cookie, "Content-Type": content_type}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=30)
    assert caught.value.code == 403
    assert json.loads(caught.value.read())["error"]["code"] == "csrf_failed"
