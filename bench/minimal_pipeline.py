"""Benchmark 6's baseline: a minimal pipeline that does the essential work of a submitted job, done well.

Both halves of the tutorials' design in one module, against the service's own
database table, settings and channel layer, so that only what the service does
beyond this shows as the difference:

* `application`, served by Daphne (`--app bench.minimal_pipeline:application`):
  a consumer that authenticates the `Authorization: Bearer` token (one database
  call), joins `bench-user-<id>`, sends `{"type": "hello"}`; on `job.submit`, one
  database call inserts the `tasks.models.Job` row as `queued` (autocommit: it is
  committed when `create` returns) and hands the task to Celery, then it answers
  `job.accepted` (seq 1). Group messages `job.event` go to the socket as they are.
* `app`, a Celery app of its own (its worker: `celery -A bench.minimal_pipeline:app`)
  whose task `bench.minimal.run(job_id)` reads its row, updates it to `running`,
  counts 10 steps as demo.countdown does (without storing progress), updates it
  to `succeeded`, and publishes `job.started`, one `job.progress` and
  `job.succeeded` to the owner's group through one long-lived event loop per
  worker process.

Done well means nothing accidental: database connections are kept as
DATABASE_CONN_MAX_AGE says (no connect per task), no thread hop per message in
the consumer, no event loop made per publish.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

import django
from django.apps import apps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.test")
# Daphne needs Django before it routes a socket; the worker's main process imports this module
# before it forks its pool, so every pool process starts with Django set up: once per process.
# (The benchmark's own process imports this module with Django already set up.)
if not apps.ready:
    django.setup()

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.db import IntegrityError, close_old_connections
from django.urls import path
from django.utils import timezone

from accounts import tokens
from bench.harness import celery_app
from patches.channels import DispatchWithoutDatabaseHop
from tasks.models import Job, JobStatus, build_progress

logger = logging.getLogger(__name__)

TASK_NAME = "bench.minimal.run"
EVENT_TYPE = "job.event"  # a group message carrying a finished frame: MinimalConsumer.job_event sends it
CLOSE_UNAUTHENTICATED = 4401


def group_name(user_id: int) -> str:
    return f"bench-user-{user_id}"


# --- Celery: the app, shared by both halves (Daphne sends with it, the worker runs it) -------------

# No Django fix-up (fixups=[]): Celery 5.7's closes every database connection before and after each
# task (DjangoWorkerFixup.close_database, whatever CONN_MAX_AGE says), a connect per task. The task
# below does what Django does around a request instead: close_old_connections(), which keeps the
# connection for CONN_MAX_AGE and drops a broken one.
app = celery_app("bench_minimal", fixups=[], worker_send_task_events=False, task_send_sent_event=False)


# --- the consumer ----------------------------------------------------------------------------------


def user_of(header: str) -> int | None:
    """The id of the user whose active token is in the Authorization header value, or None."""
    raw = tokens.bearer(header)
    token = tokens.authenticate(raw) if raw else None
    return token.user_id if token else None


def submit(user_id: int, request_id: str, kind: str, params: dict[str, Any]) -> str:
    """Insert the job as queued, then hand its task to Celery (the insert is committed by then: autocommit)."""
    job = Job.objects.create(
        owner_id=user_id,
        request_id=request_id,
        kind=kind,
        params=params,
        status=JobStatus.QUEUED,
        celery_task_id=str(uuid.uuid4()),
    )
    app.send_task(TASK_NAME, args=(str(job.id),), task_id=job.celery_task_id)
    return str(job.id)


def submit_fields(text: str) -> tuple[str, str, dict[str, Any]] | None:
    """(request_id, kind, params) of a job.submit frame; None for anything else."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("type") != "job.submit":
        return None
    request_id, kind, params = frame.get("request_id"), frame.get("kind"), frame.get("params", {})
    if not (isinstance(request_id, str) and isinstance(kind, str) and isinstance(params, dict)):
        return None
    return request_id, kind, params


# Channels' dispatch hops to its database thread before every message (patches.channels): the mix-in
# drops that hop, so the only database work is the two calls below.
class MinimalConsumer(DispatchWithoutDatabaseHop, AsyncWebsocketConsumer):  # type: ignore[misc]
    group = ""
    user_id = 0

    async def connect(self) -> None:
        header = dict(self.scope["headers"]).get(b"authorization", b"").decode("latin-1")
        user_id: int | None = await database_sync_to_async(user_of)(header)
        if user_id is None:
            await self.accept()  # accepted and closed at once, so the client sees 4401
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user_id
        self.group = group_name(user_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data='{"type":"hello"}')

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        fields = submit_fields(text_data or "")
        if fields is None:
            await self.send(text_data='{"type":"error","code":"bad_message"}')
            return
        request_id, kind, params = fields
        try:
            job_id: str = await database_sync_to_async(submit)(self.user_id, request_id, kind, params)
        except IntegrityError:  # the owner already used this request_id
            await self.send(text_data=json.dumps({"type": "error", "code": "conflict", "request_id": request_id}))
            return
        job = {"id": job_id, "status": JobStatus.QUEUED.value, "seq": 1}
        await self.send(text_data=json.dumps({"type": "job.accepted", "request_id": request_id, "job": job}))

    async def job_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/jobs/", MinimalConsumer.as_asgi())])})


# --- the worker's publisher ------------------------------------------------------------------------


class Publisher:
    """One event loop in a daemon thread that owns this process's channel layer connections.

    `send` costs the task one thread-safe hand-over (asyncio.run_coroutine_threadsafe),
    where `async_to_sync(layer.group_send)` would build a loop and connections per event.
    Events leave in the order sent: the loop starts the sends in that order, and
    channels_redis publishes them one at a time per Redis connection, under a lock
    that takes turns in arrival order.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.layer: Any = get_channel_layer()
        threading.Thread(target=self.loop.run_forever, name="minimal-publisher", daemon=True).start()

    def send(self, group: str, frame: dict[str, Any]) -> None:
        message = {"type": EVENT_TYPE, "text": json.dumps(frame)}
        future = asyncio.run_coroutine_threadsafe(self.layer.group_send(group, message), self.loop)
        future.add_done_callback(_log_failure)


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if future.exception() is not None:
        logger.error("group_send failed", exc_info=future.exception())


@functools.cache
def publisher(pid: int) -> Publisher:
    """This process's publisher, made on first use: in a pool process, after the fork (threads do not survive one)."""
    return Publisher()


# --- the task --------------------------------------------------------------------------------------


def countdown(steps: int, interval: float) -> dict[str, Any]:
    """demo.countdown's loop: a progress report per step (kept, as its reporter keeps the pending one); the last."""
    report: tuple[int, int, str, str] | None = None
    for step in range(1, steps + 1):
        if interval:
            time.sleep(interval)
        report = (step, steps, "counting", f"Step {step} of {steps}")
    assert report is not None
    return build_progress(*report)


def run_job(job_id: str) -> None:
    owner_id, params = Job.objects.values_list("owner_id", "params").get(pk=job_id)
    group, send = group_name(owner_id), publisher(os.getpid()).send
    Job.objects.filter(pk=job_id).update(status=JobStatus.RUNNING, started_at=timezone.now())
    send(group, {"type": "job.started", "job": {"id": job_id, "status": JobStatus.RUNNING.value, "seq": 2}})
    steps = int(params["steps"])
    progress = countdown(steps, int(params.get("interval_ms", 0)) / 1000)
    send(group, {"type": "job.progress", "job_id": job_id, "progress": progress})
    result = {"steps": steps}
    Job.objects.filter(pk=job_id).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now(), result=result)
    send(group, {"type": "job.succeeded", "job": {"id": job_id, "status": JobStatus.SUCCEEDED.value, "seq": 3}})


@app.task(name=TASK_NAME)
def run(job_id: str) -> None:
    """Run one job: Django's request cycle's connection handling around the work (see `app`)."""
    close_old_connections()
    try:
        run_job(job_id)
    finally:
        close_old_connections()
