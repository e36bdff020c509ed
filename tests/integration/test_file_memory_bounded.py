"""A real Celery worker runs file.process on a 200 MB file, and its pool process's peak memory grows by
far less than the file: a few MB for each operation, the same for any size.

checksum reads the 200 MB file; csv.summary and text.stats, some 30 MB/s on one core, read a 50 MB
one to keep the test short. What they keep (a batch of rows, 10,000 word counters) is full within the
first megabytes, and on 200 MB they grew no more (11 and 17 MB).
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection

from core import stack
from tasks.models import Job, JobStatus
from tests import procfs
from tests.integration.conftest import database_url, service_env, worker_and_daphne
from tests.integration.faults.helpers import socket_of, submit, wait_for_job
from uploads.models import Upload

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    # VmHWM is Linux's peak RSS; writing 5 to clear_refs resets it, so each job is measured alone.
    pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads and resets VmHWM in /proc"),
]

MB = 1000 * 1000
LIMIT_KIB = 64 * 1024  # peak growth allowed over the pool process's resident memory before the job
ROWS_PER_BLOCK = 20_000


@dataclass
class Generated:
    path: Path
    rows: int
    size: int


@dataclass
class WorkerStack:
    worker: subprocess.Popen[bytes]
    ws_url: str


def write_csv(path: Path, size: int) -> int:
    """A CSV (so also UTF-8 text) of at least `size` bytes with a vocabulary of some 60,000 words:
    one block of rows repeated. Its number of data rows."""
    rng = random.Random(3)
    rows = [
        f"{rng.randrange(10**6)},{rng.uniform(-1e4, 1e4):.3f},word{rng.randrange(60_000)} and more,"
        f"{rng.choice(['true', 'false'])},2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}\n"
        for _ in range(ROWS_PER_BLOCK)
    ]
    block = "".join(rows).encode()
    blocks = -(-size // len(block))
    with open(path, "wb") as out:
        out.write(b"id,value,text,flag,day\n")
        for _ in range(blocks):
            out.write(block)
    return blocks * ROWS_PER_BLOCK


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def files(media_root: Path) -> Iterator[dict[int, Generated]]:
    """Generated files by size, where the worker reads uploads; the 1-byte size stands for one block of rows."""
    directory = media_root / "uploads"
    directory.mkdir()
    generated = {}
    for size in (1, 50 * MB, 200 * MB):
        path = directory / f"{size}.csv"
        rows = write_csv(path, size)
        generated[size] = Generated(path, rows, path.stat().st_size)
    yield generated
    for file in generated.values():
        file.path.unlink()


@pytest.fixture(scope="module")
def worker_stack(
    django_db_setup: None, django_db_blocker: Any, media_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerStack]:
    """Its own redis-server (no other worker takes these jobs), one worker with one prefork process, Daphne."""
    redis_url = f"redis://127.0.0.1:{stack.free_port()}/0"
    redis = stack.start_redis(redis_url, tmp_path_factory.mktemp("redis"))
    logs = tmp_path_factory.mktemp("logs")
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    env = service_env(db_url, redis_url, tmp_path_factory, MEDIA_ROOT=str(media_root))
    worker_command = [*stack.worker_command("memory-worker", 1), "--pool", "prefork"]
    try:
        with worker_and_daphne(worker_command, env, logs) as started:
            yield WorkerStack(started.worker, f"ws://127.0.0.1:{started.port}/ws/jobs/")
    finally:
        stack.stop([redis])


def reset_peak(pid: int) -> int:
    """Reset the process's peak resident memory (VmHWM) to its current one, and return that, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return procfs.peak_rss_kib(pid)


async def run_job(user: User, ws_url: str, file: Generated, operation: str) -> Job:
    upload = await database_sync_to_async(Upload.objects.create)(
        owner=user, name=file.path.name, size=file.size, file=f"uploads/{file.path.name}"
    )
    async with socket_of(user, ws_url) as (socket, _):
        job_id = await submit(socket, "file.process", {"upload_id": str(upload.pk), "operation": operation})
    job = await wait_for_job(job_id, lambda job: job.is_finished, timeout=120)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def assert_complete(operation: str, result: dict[str, Any], file: Generated) -> None:
    if operation == "checksum":
        assert result["size"] == file.size
    elif operation == "csv.summary":
        assert result["rows"] == file.rows
    else:
        assert result["lines"] == file.rows + 1  # and the header


@pytest.mark.parametrize(
    ("operation", "size"), [("checksum", 200 * MB), ("csv.summary", 50 * MB), ("text.stats", 50 * MB)]
)
async def test_the_worker_processes_a_large_file_with_its_peak_memory_growing_by_a_few_mb(
    worker_stack: WorkerStack, files: dict[int, Generated], user: User, operation: str, size: int
) -> None:
    (pool,) = procfs.children(worker_stack.worker.pid)
    # The same operation on a small file first: what any first job loads or connects does not count.
    await run_job(user, worker_stack.ws_url, files[1], operation)
    before = reset_peak(pool)

    job = await run_job(user, worker_stack.ws_url, files[size], operation)

    growth = procfs.peak_rss_kib(pool) - before
    print(f"{operation}: the pool process's peak grew by {growth / 1024:.1f} MiB over a {size / MB:.0f} MB file")
    assert procfs.children(worker_stack.worker.pid) == [pool], "the job ran in the process measured"
    assert job.result is not None
    assert_complete(operation, job.result, files[size])
    assert growth < LIMIT_KIB, f"the pool process's peak grew by {growth} KiB"
