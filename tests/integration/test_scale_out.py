"""Scaled out: two Daphne processes, two Celery workers and a channel layer sharded over two Redis
servers (CHANNELS_REDIS_URLS), all on one database, behave as one service. A user's sockets on
either Daphne see every event of jobs run on either worker, a job is cancelled from any Daphne,
and the channel layer's groups really live on both shards.

The layer is the one CHANNEL_LAYER names in this process's environment, which the processes
inherit: `CHANNEL_LAYER=core pytest tests/integration/test_scale_out.py` tests the other one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import redis
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from websockets.asyncio.client import connect

from accounts import tokens
from core import stack
from tasks.models import Job, JobStatus
from tests import procfs
from tests.factories import PASSWORD, UserFactory
from tests.integration.client import JobsClient, Message, job_id_of, jobs_client, login, seq_of
from tests.integration.conftest import database_url, worker_answers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The layer's key and channel prefix here: nothing else on the session's Redis uses it, so what
# the shards hold under it is this topology's alone.
PREFIX = "scaleout"
WORKERS = ("scale-worker-1", "scale-worker-2")
# Runs for 1,000 s: it ends only when cancelled, so it holds its worker's one slot meanwhile.
BLOCKER = {"steps": 10_000, "interval_ms": 100}
SHORT = {"steps": 4, "interval_ms": 100}


@dataclass
class ScaleOut:
    daphnes: tuple[str, str]  # base URLs
    workers: list[subprocess.Popen[bytes]]
    shards: list[str]  # CHANNELS_REDIS_URLS, in order


@pytest.fixture(scope="module")
def scale_out(
    django_db_setup: None, django_db_blocker: Any, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScaleOut]:
    """The session's Redis as broker and first shard, a second redis-server as the second shard, two
    Daphnes and two workers of concurrency 1 (prefetch 1: each holds one job at a time)."""
    logs = tmp_path_factory.mktemp("scale-out-logs")
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    # Database 1: the live stack's worker consumes database 0 of the same server and must not take these jobs.
    broker = urlsplit(redis_url)._replace(path="/1").geturl()
    second_shard = f"redis://127.0.0.1:{stack.free_port()}/0"
    env = {
        **os.environ,  # CHANNEL_LAYER among the rest
        "DJANGO_SETTINGS_MODULE": "core.settings.test",
        "DATABASE_URL": db_url,
        "REDIS_URL": broker,
        "CHANNELS_REDIS_URLS": f"{broker},{second_shard}",
        "CHANNELS_PREFIX": PREFIX,
        "VAR_DIR": str(tmp_path_factory.mktemp("scale-out-var")),
        "PYTHONUNBUFFERED": "1",
    }
    ports = (stack.free_port(), stack.free_port())
    while ports[0] == ports[1]:
        ports = (ports[0], stack.free_port())
    shard = stack.start_redis(second_shard, tmp_path_factory.mktemp("redis-shard-2"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        commands = [
            *((f"daphne-{port}", stack.daphne_command("127.0.0.1", port)) for port in ports),
            *((name, stack.worker_command(name, concurrency=1)) for name in WORKERS),
        ]
        for name, command in commands:
            with open(logs / f"{name}.log", "wb") as log:
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        for port, daphne in zip(ports, processes[:2], strict=True):
            stack.wait_until(partial(stack.port_open, "127.0.0.1", port), "Daphne", 60, daphne)
        for name, worker in zip(WORKERS, processes[2:], strict=True):
            stack.wait_until(partial(worker_answers, broker, name), name, 60, worker)
        daphnes = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
        yield ScaleOut(daphnes, processes[2:], [broker, second_shard])
    finally:
        stack.stop(processes)
        stack.stop([shard])


class Recorder:
    """Every frame one socket receives, read in the background, so several sockets can be watched at once."""

    def __init__(self, client: JobsClient) -> None:
        self.client = client
        self.messages: list[Message] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.client.socket:
            async with self._arrived:
                self.messages.append(json.loads(frame))
                self._arrived.notify_all()

    async def wait_for(self, wanted: Callable[[Message], bool], timeout: float = 30) -> Message:
        """The first message, received already or still to come, for which `wanted` holds."""

        def found() -> Message | None:
            return next((message for message in self.messages if wanted(message)), None)

        async with asyncio.timeout(timeout), self._arrived:
            message = await self._arrived.wait_for(found)
        assert message is not None
        return message

    async def submit(self, params: Message) -> str:
        """Submit a demo.countdown; its job id once accepted."""
        request_id = uuid.uuid4().hex
        await self.client.send(
            {"type": "job.submit", "request_id": request_id, "kind": "demo.countdown", "params": params}
        )
        accepted = await self.wait_for(lambda message: message.get("request_id") == request_id)
        assert accepted["type"] == "job.accepted", accepted
        return str(accepted["job"]["id"])

    async def cancel(self, job_id: str) -> None:
        await self.client.send({"type": "job.cancel", "job_id": job_id})

    def events(self, job_id: str) -> list[tuple[str, int]]:
        """(type, seq) of the job's events, in the order they arrived."""
        return [
            (message["type"], seq_of(message))
            for message in self.messages
            if message["type"].startswith("job.") and message["type"] != "job.accepted"
            if job_id_of(message) == job_id
        ]

    def accepted(self, job_id: str) -> int:
        return sum(1 for message in self.messages if message["type"] == "job.accepted" and job_id_of(message) == job_id)

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def event(kind: str, job_id: str) -> Callable[[Message], bool]:
    return lambda message: message["type"] == kind and job_id_of(message) == job_id


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/ws/jobs/"


@asynccontextmanager
async def recording(client: JobsClient) -> AsyncIterator[Recorder]:
    recorder = Recorder(client)
    try:
        yield recorder
    finally:
        await recorder.close()


@asynccontextmanager
async def session_socket(base_url: str, user: User) -> AsyncIterator[Recorder]:
    """A browser's socket: logged in through the login form, with its session cookie and Origin."""
    cookie = await asyncio.to_thread(login, base_url, user.username, PASSWORD)
    async with jobs_client(ws_url(base_url), cookie, base_url) as client, recording(client) as recorder:
        yield recorder


@asynccontextmanager
async def token_socket(base_url: str, user: User) -> AsyncIterator[Recorder]:
    """A script's socket: an API token in the Authorization header."""
    _, raw = await database_sync_to_async(tokens.create)(user, "scale-out")
    headers = {"Authorization": f"Bearer {raw}"}
    async with connect(ws_url(base_url), additional_headers=headers, open_timeout=10) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert hello["type"] == "hello", hello
        async with recording(JobsClient(socket, hello)) as recorder:
            yield recorder


@asynccontextmanager
async def both_daphnes(scale_out: ScaleOut, user: User) -> AsyncIterator[tuple[Recorder, Recorder]]:
    """The user's session socket on the first Daphne and token socket on the second."""
    async with (
        session_socket(scale_out.daphnes[0], user) as on_a,
        token_socket(scale_out.daphnes[1], user) as on_b,
    ):
        yield on_a, on_b


def assert_whole_story(on_a: Recorder, on_b: Recorder, job_id: str) -> None:
    """Both sockets saw queued, started, progress and succeeded, in the same order, seq growing."""
    seen = on_a.events(job_id)
    assert on_b.events(job_id) == seen
    types = [kind for kind, _ in seen]
    assert types[:2] == ["job.queued", "job.started"] and types[-1] == "job.succeeded", types
    assert set(types[2:-1]) == {"job.progress"}, types
    seqs = [seq for _, seq in seen]
    assert seqs == sorted(set(seqs)), seqs


def pid_of(job: Job) -> int:
    return int(job.worker.rpartition(":")[2])


async def test_a_users_sockets_on_both_daphnes_see_every_event_of_jobs_run_on_both_workers(
    scale_out: ScaleOut, user: User
) -> None:
    """Which worker runs a job is decided by construction, not by timing: each worker holds one job
    at a time, so while a never-ending blocker holds one worker every other job goes to the other.
    Blocker 1 holds worker X, three jobs run on Y; blocker 2 then holds Y, blocker 1 is cancelled,
    and three more jobs run on X."""
    async with both_daphnes(scale_out, user) as (on_a, on_b):
        blocker1 = await on_a.submit(BLOCKER)
        await on_b.wait_for(event("job.started", blocker1))
        first = [(socket, await socket.submit(SHORT)) for socket in (on_a, on_b, on_a)]
        for _, job_id in first:
            await on_b.wait_for(event("job.succeeded", job_id))

        blocker2 = await on_b.submit(BLOCKER)
        await on_a.wait_for(event("job.started", blocker2))
        await on_b.cancel(blocker1)
        second = [(socket, await socket.submit(SHORT)) for socket in (on_b, on_a, on_b)]
        for _, job_id in second:
            await on_a.wait_for(event("job.succeeded", job_id))
        await on_a.cancel(blocker2)
        for socket in (on_a, on_b):
            for blocker in (blocker1, blocker2):
                await socket.wait_for(event("job.cancelled", blocker))
            for _, job_id in first + second:
                await socket.wait_for(event("job.succeeded", job_id))

    for submitter, job_id in first + second:
        assert_whole_story(on_a, on_b, job_id)
        # job.accepted goes to the submitting socket only.
        assert [socket.accepted(job_id) for socket in (on_a, on_b)] == [int(submitter is on_a), int(submitter is on_b)]

    jobs = {str(job.pk): job async for job in Job.objects.all()}
    x, y = pid_of(jobs[blocker1]), pid_of(jobs[blocker2])
    assert [pid_of(jobs[job_id]) for _, job_id in first] == [y, y, y]
    assert [pid_of(jobs[job_id]) for _, job_id in second] == [x, x, x]
    # X and Y are the pool processes of the two workers, one each.
    pools = [set(procfs.children(worker.pid)) for worker in scale_out.workers]
    assert (x in pools[0] and y in pools[1]) or (x in pools[1] and y in pools[0]), (x, y, pools)


async def test_a_job_submitted_on_one_daphne_is_cancelled_from_the_other(scale_out: ScaleOut, user: User) -> None:
    async with both_daphnes(scale_out, user) as (on_a, on_b):
        job_id = await on_a.submit(BLOCKER)
        await on_b.wait_for(event("job.progress", job_id))
        await on_b.cancel(job_id)
        cancelled = [await socket.wait_for(event("job.cancelled", job_id)) for socket in (on_a, on_b)]

    assert cancelled[0] == cancelled[1]
    assert cancelled[0]["job"]["status"] == "cancelled"
    stored = await Job.objects.aget(pk=job_id)
    assert stored.status == JobStatus.CANCELLED and stored.seq == cancelled[0]["job"]["seq"]


def groups_on(shard: str) -> set[str]:
    """The channel-layer groups that live on one Redis: subscribed group channels (pubsub layer) or
    group keys (core layer)."""
    client = redis.Redis.from_url(shard, decode_responses=True)
    try:
        channels = cast(list[str], client.pubsub_channels(f"{PREFIX}__group__*"))  # decoded: str
        keys = list(client.scan_iter(match=f"{PREFIX}:group:*"))
    finally:
        client.close()
    return {name.removeprefix(f"{PREFIX}__group__") for name in channels} | {
        key.removeprefix(f"{PREFIX}:group:") for key in keys
    }


async def placement_of(shards: list[str]) -> list[set[str]]:
    return [await asyncio.to_thread(groups_on, shard) for shard in shards]


async def test_groups_live_on_both_shards_and_events_reach_users_on_each(scale_out: ScaleOut) -> None:
    """A user's group lives on the shard the hash of its name picks. Users are added, a socket each on
    alternate Daphnes, until their groups are seen on both shards (a handful does it), so the test
    never depends on which ids the database hands out; then every user's job events arrive."""
    async with AsyncExitStack() as stack_of_sockets:
        sockets: dict[str, Recorder] = {}
        placement: list[set[str]] = [set(), set()]
        while not all(sockets.keys() & groups for groups in placement):
            assert len(sockets) < 24, f"user groups all on one shard: {placement}"
            user = await database_sync_to_async(UserFactory.create)()
            base_url = scale_out.daphnes[len(sockets) % 2]
            sockets[f"user.{user.pk}"] = await stack_of_sockets.enter_async_context(token_socket(base_url, user))
            placement = await placement_of(scale_out.shards)
        # A subscription may reach Redis a moment after the hello: wait until every group is seen.
        async with asyncio.timeout(10):
            while not sockets.keys() <= placement[0] | placement[1]:
                placement = await placement_of(scale_out.shards)

        # Every process agrees on where each group lives: it is on exactly one shard.
        for group in sockets:
            assert [group in groups for groups in placement].count(True) == 1, (group, placement)
        jobs = {group: await socket.submit({"steps": 2}) for group, socket in sockets.items()}
        for group, socket in sockets.items():
            await socket.wait_for(event("job.succeeded", jobs[group]))
            assert [kind for kind, _ in socket.events(jobs[group])][:2] == ["job.queued", "job.started"]
