"""A 150 MB upload through Daphne arrives whole, and Daphne's peak memory grows by far less than the file.

Daphne 4.2.3 on its own copies a request body from Twisted's temporary file
into the application's unbounded queue before Django reads a byte of it;
core.daphne feeds the body one chunk per receive() instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from accounts import tokens
from core import stack
from tests import procfs
from tests.integration.conftest import database_url, service_env
from uploads.models import Upload

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from Linux's /proc"),
]

SIZE = 150 * 1000 * 1000
LIMIT_KIB = 40 * 1024  # peak growth allowed over Daphne's warmed-up peak
CHUNK = 1024 * 1024


@dataclass
class Daphne:
    process: subprocess.Popen[bytes]
    port: int
    media_root: Path


@pytest.fixture
def daphne(
    transactional_db: None, redis_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daphne]:
    """Daphne alone, started as the run command starts it, with a limit that lets 150 MB through."""
    port = stack.free_port()
    db_url = database_url(connection.settings_dict)
    env = service_env(db_url, redis_url, tmp_path_factory, UPLOAD_MAX_BYTES=str(2 * SIZE))
    with open(tmp_path / "daphne.log", "wb") as log:
        process = subprocess.Popen(
            stack.daphne_command("127.0.0.1", port), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=process)
        yield Daphne(process, port, Path(env["VAR_DIR"]) / "media")
    finally:
        stack.stop([process])


def post_generated_file(port: int, token: str, size: int) -> tuple[int, dict[str, Any], str]:
    """POST `size` pseudo-random bytes as a multipart upload, generated as they are sent.

    The status, the JSON answer, and the SHA-256 of the bytes sent.
    """
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sent = hashlib.sha256()

    def body() -> Iterator[bytes]:
        yield head
        rng = random.Random(size)  # never the same chunk twice, so a chunk out of order changes the hash
        for start in range(0, size, CHUNK):
            chunk = rng.randbytes(min(CHUNK, size - start))
            sent.update(chunk)
            yield chunk
        yield tail

    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
    }
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        client.request("POST", "/api/uploads/", body=body(), headers=headers)
        response = client.getresponse()
        return response.status, json.loads(response.read()), sent.hexdigest()
    finally:
        client.close()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_150_mb_upload_leaves_daphnes_peak_memory_far_below_the_files_size(daphne: Daphne, user: User) -> None:
    _, token = tokens.create(user, "upload")
    # A first, small upload loads what a request loads (views, middleware), so it does not count below.
    status, answer, _ = post_generated_file(daphne.port, token, CHUNK)
    assert status == 201, answer
    before = procfs.peak_rss_kib(daphne.process.pid)

    status, answer, sent = post_generated_file(daphne.port, token, SIZE)

    growth = procfs.peak_rss_kib(daphne.process.pid) - before
    print(f"Daphne's peak RSS grew by {growth / 1024:.1f} MiB over a {SIZE / 1e6:.0f} MB upload")
    assert status == 201, answer
    assert answer["size"] == SIZE
    stored = Upload.objects.get(pk=answer["id"]).file.name
    assert stored is not None
    assert sha256_of(daphne.media_root / stored) == sent, "the stored file is what was sent"
    assert growth < LIMIT_KIB, f"Daphne's peak grew by {growth} KiB"
