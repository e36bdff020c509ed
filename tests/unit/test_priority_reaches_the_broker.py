"""A job's priority (protocol 1.1) is stored, shown, and sent as the message priority that puts its task in
the right list of kombu's Redis priority steps: high before normal before low."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis
from celery import Celery
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from patches import kombu
from tasks import broker, services
from tasks.models import Job
from tests.unit.batching import children
from tests.unit.conftest import SentTasks
from tests.unit.sockets import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def submit(user: User, priority: str = "normal") -> Job:
    job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1}, priority)
    return job


def test_each_priority_is_its_own_step_and_normal_is_the_default(user: User, sent_tasks: SentTasks) -> None:
    jobs = [submit(user), submit(user, "high"), submit(user, "low")]
    assert [job.priority for job in jobs] == ["normal", "high", "low"]
    assert sent_tasks.priorities == [3, 0, 6]


def test_a_retry_and_a_batch_keep_the_priority(user: User, sent_tasks: SentTasks) -> None:
    job = submit(user, "low")
    services.cancel(user, str(job.pk))
    services.retry(user, str(job.pk))
    batch, _ = services.submit_batch(
        user, "b", "Urgent", "parallel", [("demo.countdown", {"steps": 1})] * 2, priority="high"
    )
    assert batch.priority == "high" and {child.priority for child in children(batch)} == {"high"}
    assert sent_tasks.priorities == [6, 6, 0, 0]


async def test_the_socket_takes_a_priority_and_refuses_an_unknown_one(user: User) -> None:
    async with connected(user) as (socket, _):
        submit = {"type": "job.submit", "request_id": "p-1", "kind": "demo.countdown", "params": {"steps": 1}}
        accepted = await socket.request({**submit, "priority": "high"})
        assert accepted["type"] == "job.accepted" and accepted["job"]["priority"] == "high"
        refused = await socket.request({**submit, "request_id": "p-2", "priority": "urgent"})
        assert (refused["code"], refused["request_id"]) == ("bad_message", "p-2")
        assert list(refused["details"]) == ["priority"]
        batch = {"type": "batch.submit", "request_id": "p-3", "mode": "parallel", "priority": "low",
                 "jobs": [{"kind": "demo.countdown", "params": {"steps": 1}}]}  # fmt: skip
        assert (await socket.request(batch))["job"]["priority"] == "low"


def test_redis_keeps_each_priority_in_its_own_list_popped_high_first(settings: Settings, redis_server: str) -> None:
    """The broker mechanism itself, on a real Redis: the lists a worker pops in order (kombu's BRPOP keys)."""
    url = f"{redis_server}/3"
    app = Celery(broker=url, set_as_current=False)
    client = redis.Redis.from_url(url)
    try:
        for name in ("low", "normal", "high"):
            app.send_task("demo.countdown", args=[name], queue="default", priority=broker.priority_of(name))
        lists = list(kombu.queue_keys("default"))  # in the order a worker pops them
        waiting = [raw for key in lists for raw in client.lrange(key, 0, -1)]
        assert [_args(raw) for raw in waiting] == [["high"], ["normal"], ["low"]]
    finally:
        client.flushdb()  # the session's private Redis, its own database
        client.close()
        app.close()


def _args(raw: bytes | str) -> object:
    """The task's args, from a message as kombu stores it (JSON whose body is base64 JSON)."""
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    return body[0]
