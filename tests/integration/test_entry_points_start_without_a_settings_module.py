"""The documented commands start with no DJANGO_SETTINGS_MODULE at all, as manage.py does.

`celery -A celery_app worker`, `celery -A celery_app beat`, `daphne
core.asgi:application`, `celery -A celery_app inspect` and `celery -A celery_app
flower`, run as the console scripts people type, each fall back to
core.settings.local. Celery installs its Django fix-up only when the variable
is set as the app is made, so a worker started without it crashed on its first
task (AppRegistryNotReady). Here a job goes through Daphne and the worker, and a
job only the reconciler can start (its task was never sent) proves that beat
schedules it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from websockets.asyncio.client import connect

from accounts import tokens
from core import stack
from tasks.models import Job, JobStatus
from tests.integration.conftest import database_url, worker_answers
from tests.integration.faults.helpers import wait_for_job
from tests.integration.test_flower_shows_job_tasks import http_get

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SCRIPTS = Path(sys.executable).parent  # the virtualenv's console scripts: celery, daphne


@dataclass
class Plain:
    ws_url: str
    processes: list[subprocess.Popen[bytes]]
    env: dict[str, str]  # without DJANGO_SETTINGS_MODULE
    logs: Path


@pytest.fixture
def plain_stack(tmp_path: Path, django_db_blocker: Any) -> Iterator[Plain]:
    """A private Redis, then a worker, beat and Daphne started as documented, without DJANGO_SETTINGS_MODULE."""
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    redis_url = f"redis://127.0.0.1:{stack.free_port()}/0"
    port = stack.free_port()
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        VAR_DIR=str(tmp_path / "var"),
        PYTHONUNBUFFERED="1",
        # The reconciler every second, resending a queued job's task after half a second.
        JOBS_RECONCILE_SECONDS="1",
        JOBS_REQUEUE_AFTER_SECONDS="0.5",
    )
    commands = {
        "worker": [str(SCRIPTS / "celery"), "-A", "celery_app", "worker", "--hostname", "plain@%h", "-c", "1"],
        "beat": [str(SCRIPTS / "celery"), "-A", "celery_app", "beat", "--schedule", str(tmp_path / "beat")],
        "daphne": [str(SCRIPTS / "daphne"), "-b", "127.0.0.1", "-p", str(port), "core.asgi:application"],
    }
    processes = [stack.start_redis(redis_url, tmp_path / "redis")]
    try:
        for name, command in commands.items():
            with open(tmp_path / f"{name}.log", "wb") as log:
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        worker, _, daphne = processes[1:]
        stack.wait_until(lambda: worker_answers(redis_url, "plain"), "the worker", timeout=60, process=worker)
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=daphne)
        yield Plain(f"ws://127.0.0.1:{port}/ws/jobs/", processes, env, tmp_path)
    finally:
        stack.stop(list(reversed(processes)))
        for name in commands:
            # Whatever went wrong is in these logs; pytest shows them with a failure.
            print(f"--- {name}.log ---\n{(tmp_path / f'{name}.log').read_text(errors='replace')[-3000:]}")


async def test_a_job_runs_through_daphne_and_the_worker(plain_stack: Plain, user: User) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "plain")
    async with connect(plain_stack.ws_url, additional_headers={"Authorization": f"Bearer {raw}"}) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert hello["type"] == "hello" and "demo.countdown" in hello["kinds"]
        submit = {"type": "job.submit", "request_id": "plain", "kind": "demo.countdown", "params": {"steps": 3}}
        await socket.send(json.dumps(submit))
        while True:
            event = json.loads(await asyncio.wait_for(socket.recv(), 30))
            assert event["type"] not in ("error", "job.failed"), event
            if event["type"] == "job.succeeded":
                break
    assert event["job"]["result"] == {"steps": 3}


async def test_beat_schedules_the_reconciler_that_the_worker_runs(plain_stack: Plain, user: User) -> None:
    # A queued job whose task never reached the broker: only the reconciler, run by beat, sends it.
    job = await database_sync_to_async(Job.objects.create)(
        owner=user, request_id="never-sent", kind="demo.countdown", params={"steps": 1}, celery_task_id=uuid.uuid4().hex
    )
    past = timezone.now() - timedelta(seconds=5)
    await database_sync_to_async(Job.objects.filter(pk=job.pk).update)(updated_at=past)
    done = await wait_for_job(str(job.pk), lambda found: found.is_finished, timeout=60)
    assert done.status == JobStatus.SUCCEEDED


def test_inspect_and_flower_find_the_worker(plain_stack: Plain) -> None:
    celery = str(SCRIPTS / "celery")
    pinged = subprocess.run(
        [celery, "-A", "celery_app", "inspect", "ping", "--timeout", "10"],
        env=plain_stack.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    assert "plain@" in pinged.stdout and "pong" in pinged.stdout
    port, auth = stack.free_port(), "ops:plain-flower-password"
    command = [celery, "-A", "celery_app", "flower", "--address=127.0.0.1", f"--port={port}"]
    with open(plain_stack.logs / "flower.log", "wb") as log:
        flower = subprocess.Popen(
            command, env={**plain_stack.env, "FLOWER_BASIC_AUTH": auth}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Flower", timeout=60, process=flower)

        def lists_the_worker() -> bool:
            status, body = http_get(f"http://127.0.0.1:{port}/api/workers?refresh=1", auth)
            return status == 200 and any(name.startswith("plain@") for name in json.loads(body))

        stack.wait_until(lists_the_worker, "Flower listing the worker", timeout=30, process=flower)
    finally:
        stack.stop([flower])
        print(f"--- flower.log ---\n{(plain_stack.logs / 'flower.log').read_text(errors='replace')[-3000:]}")
