"""A client that aborts an upload half-way (a connection reset after half of a 20 MB body): the part
Daphne received, on disk in Twisted's temporary file, is deleted and its file closed; nothing reaches
Django (no upload stored, nothing left under MEDIA_ROOT, no job); and the same Daphne goes on serving:
the next upload is stored and a socket gets its hello."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from accounts import tokens
from tasks.models import Job
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import Daphne, own_daphne, socket_of, wait_until
from uploads.models import Upload

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

SIZE = 20 * 1024 * 1024
BOUNDARY = "aborted-upload-boundary"


@pytest.fixture
def daphne(fault_stack: FaultStack, tmp_path: Path) -> Iterator[Daphne]:
    """A Daphne of its own (its open files are the test's to count), with a MEDIA_ROOT of its own."""
    with own_daphne(fault_stack.env, fault_stack.logs / "daphne-upload.log", MEDIA_ROOT=str(tmp_path)) as d:
        yield d


def multipart(size: int) -> tuple[bytes, bytes]:
    """The body's head (boundary and part headers) and tail (closing boundary) around `size` bytes of file."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(port: int, token: str, length: int) -> bytes:
    return (
        f"POST /api/uploads/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def deleted_files(pid: int) -> dict[str, int]:
    """The regular files `pid` holds open that no name points to any more (temporary files): fd -> size."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target, info = os.readlink(path), os.stat(path)
        except OSError:
            continue  # closed meanwhile
        if target.endswith(" (deleted)") and stat.S_ISREG(info.st_mode):
            found[fd] = info.st_size
    return found


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def upload(base_url: str, token: str) -> int:
    head, tail = multipart(1024)
    body = head + b"x" * 1024 + tail
    request = urllib.request.Request(f"{base_url}/api/uploads/", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


async def test_an_upload_aborted_half_way_leaves_no_file_no_upload_no_job_and_daphne_serving(
    daphne: Daphne, user: User, tmp_path: Path
) -> None:
    _, token = await database_sync_to_async(tokens.create)(user, "uploader")
    port = int(daphne.base_url.rsplit(":", 1)[1])
    before = deleted_files(daphne.pid)
    head, tail = multipart(SIZE)
    client = socket.create_connection(("127.0.0.1", port))
    try:
        client.sendall(request_head(port, token, len(head) + SIZE + len(tail)) + head + b"x" * (SIZE // 2))

        def partial_on_disk() -> bool:
            return any(size >= SIZE // 4 for fd, size in deleted_files(daphne.pid).items() if fd not in before)

        await wait_until(partial_on_disk, "Daphne to hold part of the body in a temporary file")
    finally:
        # A reset, not a polite close: the client is gone half-way through.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    await wait_until(lambda: deleted_files(daphne.pid).keys() <= before.keys(), "the partial body's file closed")

    assert not await database_sync_to_async(Upload.objects.filter(owner=user).exists)()
    assert not await database_sync_to_async(Job.objects.filter(owner=user).exists)()
    assert await asyncio.to_thread(files_under, tmp_path) == []
    # The same Daphne serves on: an upload is stored, a socket says hello.
    assert await asyncio.to_thread(upload, daphne.base_url, token) == 201
    async with socket_of(user, daphne.ws_url) as (_, hello):
        assert hello["type"] == "hello"
