"""Small helpers of the fault tests: a token socket, a Daphne of a test's own, waiting on the database."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from accounts import tokens
from core import stack
from tasks import batches
from tasks.models import Batch, Job, JobEvent


@dataclass(frozen=True)
class Daphne:
    base_url: str
    pid: int

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws/jobs/"


@contextmanager
def own_daphne(env: dict[str, str], log: Path, **settings: str) -> Iterator[Daphne]:
    """A Daphne on the stack's `env` with `settings` added, beside the stack's own; stopped on the way out,
    after a check that it did not die meanwhile."""
    port = stack.free_port()
    with open(log, "ab") as output:
        process = subprocess.Popen(
            stack.daphne_command("127.0.0.1", port), env={**env, **settings}, stdout=output, stderr=output
        )
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=process)
        yield Daphne(f"http://127.0.0.1:{port}", process.pid)
        assert process.poll() is None, f"Daphne died (see {log})"
    finally:
        stack.stop([process])


@contextmanager
def queue_left_alone(redis_url: str, queue: str) -> Iterator[None]:
    """The running workers stop consuming `queue` (Celery's cancel_consumer); they take it up again on the way out."""
    app = Celery(broker=redis_url, set_as_current=False)
    try:
        assert app.control.cancel_consumer(queue, reply=True, timeout=5), "no worker answered"
        yield
    finally:
        app.control.add_consumer(queue, reply=True, timeout=5)
        app.close()


@contextmanager
def worker_of_own(
    env: dict[str, str], log: Path, name: str, queue: str, answers: Callable[[str], bool], **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker of `queue` alone, on `env` with `settings` added; SIGKILLed (stopped or not) on the way out."""
    command = [*stack.worker_command(name, concurrency=1), "-Q", queue]
    with open(log, "ab") as output:
        worker = subprocess.Popen(
            command, env={**env, **settings}, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        stack.wait_until(lambda: answers(name), name, timeout=60, process=worker)
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


@asynccontextmanager
async def socket_of(user: User, ws_url: str) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    _, raw = await database_sync_to_async(tokens.create)(user, "faults")
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {raw}"}, open_timeout=10) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        yield socket, hello


async def submit(socket: ClientConnection, kind: str, params: dict[str, Any], **fields: Any) -> str:
    """job.submit (with any more `fields`, e.g. priority) until job.accepted: the job's id."""
    message = {"type": "job.submit", "request_id": uuid.uuid4().hex, "kind": kind, "params": params, **fields}
    await socket.send(json.dumps(message))
    while True:
        reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if reply["type"] == "job.accepted":
            return str(reply["job"]["id"])
        assert reply["type"] != "error", reply


async def wait_for_job(job_id: str, done: Callable[[Job], bool], timeout: float = 60) -> Job:
    """Poll the database until `done(job)` holds; the job as it then is."""
    deadline = time.monotonic() + timeout
    while True:
        job: Job = await database_sync_to_async(Job.objects.get)(pk=job_id)
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job.status} ({job.progress}, error {job.error})"
        await asyncio.sleep(0.1)


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class SyncedClient:
    """A client as the protocol asks: it merges hello snapshots and events by `seq`, and reconnects by
    itself with exponential backoff and jitter after any close but 4401/4403. With `churn` set, each
    connection also closes itself after a random short life until `churn` is cleared."""

    def __init__(self, ws_url: str, token: str, churn: asyncio.Event | None = None) -> None:
        self.ws_url = ws_url
        self.token = token
        self.churn = churn
        self.jobs: dict[str, tuple[int, str]] = {}  # job id -> (highest seq applied, status)
        self.connects = 0
        self.close_codes: list[int | None] = []  # how each connection ended
        self.live = False  # connected, and its hello applied

    @classmethod
    async def of(cls, user: User, ws_url: str, churn: asyncio.Event | None = None) -> SyncedClient:
        _, raw = await database_sync_to_async(tokens.create)(user, "faults")
        return cls(ws_url, raw, churn)

    def status(self, job_id: str) -> str | None:
        known = self.jobs.get(job_id)
        return known[1] if known else None

    def shows(self, job_ids: list[str], status: str = "succeeded") -> bool:
        return self.live and all(self.status(job_id) == status for job_id in job_ids)

    def apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "hello":
            for job in message["jobs"]:
                self._merge(job["id"], job["seq"], job["status"])
        elif kind == "job.progress":
            self._merge(message["job_id"], message["seq"], None)
        elif kind.startswith("job.") and "job" in message:
            self._merge(message["job"]["id"], message["job"]["seq"], message["job"]["status"])

    def _merge(self, job_id: str, seq: int, status: str | None) -> None:
        known = self.jobs.get(job_id)
        if known is not None and seq <= known[0]:
            return
        self.jobs[job_id] = (seq, status or (known[1] if known else "running"))

    async def run(self) -> None:
        """Stay connected (or churn) until cancelled."""
        delay = 0.05
        while True:
            code = None
            try:
                async with connect(
                    self.ws_url, additional_headers={"Authorization": f"Bearer {self.token}"}, open_timeout=10
                ) as socket:
                    self.connects += 1
                    delay = 0.05
                    churning = self.churn is not None and self.churn.is_set()
                    try:
                        async with asyncio.timeout(random.uniform(0.05, 0.5) if churning else None):
                            async for frame in socket:
                                self.apply(json.loads(frame))
                                self.live = True
                    except TimeoutError:
                        pass  # the end of a churning connection's life: close it and connect again
                    except ConnectionClosed:
                        pass  # dropped, or closed by the server: try again (below)
                    finally:
                        self.live = False
                    code = socket.close_code
                    self.close_codes.append(code)
                    if churning:
                        continue
            except (OSError, TimeoutError, WebSocketException):
                pass  # refused or dropped: try again
            if code in (4401, 4403):
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)


@asynccontextmanager
async def running(clients: list[SyncedClient]) -> AsyncIterator[None]:
    """Run the clients for the duration of the block, then stop them."""
    tasks = [asyncio.create_task(client.run()) for client in clients]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def submit_batch(socket: ClientConnection, mode: str, jobs: list[dict[str, Any]], title: str = "") -> str:
    """A batch.submit, in parts of at most 1,000 jobs (a frame holds 64 KiB); the batch's id once accepted."""
    request_id = uuid.uuid4().hex
    for offset in range(0, len(jobs), 1000):
        part = jobs[offset : offset + 1000]
        continues = offset + len(part) < len(jobs)
        message = {"type": "batch.submit", "request_id": request_id, "mode": mode, "title": title, "jobs": part}
        await socket.send(json.dumps({**message, "offset": offset, "continues": continues}))
        while True:
            reply = json.loads(await asyncio.wait_for(socket.recv(), 30))
            assert reply["type"] != "error", reply
            if reply["type"] == "batch.part" and continues:
                break
            if reply["type"] == "job.accepted" and not continues:
                return str(reply["job"]["id"])
    raise AssertionError("no job.accepted")


def batch_is_exact(batch_id: str) -> None:
    """The batch's counters equal a recount of its children, and no child ended twice (for batches never retried)."""
    counts = Batch.objects.get(pk=uuid.UUID(batch_id))
    assert {k: v for k, v in counts.counts().items() if k != "total"} == batches.recount(uuid.UUID(batch_id))
    final = ["job.succeeded", "job.failed"]
    endings = JobEvent.objects.filter(job__parent_id=uuid.UUID(batch_id), event__in=final)
    ended = list(endings.values_list("job_id", flat=True))
    assert len(ended) == len(set(ended)), "a child ended twice"
