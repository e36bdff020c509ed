"""Unit tests: the in-memory channel layer, and no broker (sent tasks are recorded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from pytest_django.fixtures import Settings

from celery_app import app as celery_app
from tasks import batches, limits
from transport.publisher import publisher

THROTTLE_DB = 1  # unit tests keep rate-limit counters in their own DB of the private Redis


@pytest.fixture(autouse=True)
async def in_memory_channel_layer(settings: Settings, redis_server: str) -> AsyncIterator[None]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.THROTTLE_REDIS_URL = f"{redis_server}/{THROTTLE_DB}"
    yield
    # Inside the test's loop, so a drain task bound to it is cancelled, not left pending. The bound is for a
    # publisher that never stops; a busy 2-core machine once needed more than 5 s (c9d0f5e's fresh-clone run).
    done = publisher.reset()
    if done is not None:
        await asyncio.wait_for(asyncio.wrap_future(done), 30)
    # Counters must not leak from one test into the next.
    client = redis.Redis.from_url(settings.THROTTLE_REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


class SentTasks(list[dict[str, Any]]):
    revoked: list[str]
    priorities: list[int | None]  # each send's message priority, in the order sent


# Options of Celery's send_task that say how and when to deliver the task, not what it gets:
# everything else passed to send_task reaches the broker (and Flower) as the task's input.
DELIVERY_OPTIONS = frozenset(
    {
        "countdown", "eta", "expires", "queue", "routing_key", "exchange", "exchange_type", "priority",
        "retries", "time_limit", "soft_time_limit", "ignore_result", "add_to_parent", "serializer",
        "compression", "producer", "connection", "router", "result_cls", "publisher", "link", "link_error",
        "route_name", "retry", "retry_policy", "reply_to",
    }
)  # fmt: skip


@pytest.fixture(autouse=True)
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> SentTasks:
    """Record tasks handed to Celery instead of talking to a broker.

    Each entry holds the task's name, args and task_id, and, only when there are any, its
    `kwargs` (the task's keyword arguments and any other options that would travel with it),
    so that a test comparing an entry with `{"name", "args", "task_id"}` also proves nothing
    else, personal data included, was sent.
    """
    sent = SentTasks()
    sent.revoked = []
    sent.priorities = []

    def send_task(
        name: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> None:
        entry: dict[str, Any] = {"name": name, "args": args, "task_id": task_id}
        carried = {**(kwargs or {}), **{key: value for key, value in options.items() if key not in DELIVERY_OPTIONS}}
        if carried:
            entry["kwargs"] = carried
        sent.append(entry)
        sent.priorities.append(options.get("priority"))

    monkeypatch.setattr(celery_app, "send_task", send_task)

    def revoke(task_id: str | list[str], **kwargs: Any) -> None:
        sent.revoked.extend([task_id] if isinstance(task_id, str) else task_id)

    monkeypatch.setattr(celery_app.control, "revoke", revoke)
    return sent


@pytest.fixture(autouse=True)
def batch_progress(monkeypatch: pytest.MonkeyPatch) -> Iterator[batches.Coalescer]:
    """A batch progress coalescer of this test's own, whose trailing sends stop when the test ends
    (they run on the timer thread, after the test's database is gone)."""
    coalescer = batches.Coalescer()
    monkeypatch.setattr(batches, "progress", coalescer)
    yield coalescer
    coalescer.close()


@pytest.fixture(autouse=True)
def paused_kinds_read_afresh() -> None:
    """Each test reads which kinds are paused from its own database, not a copy cached by an earlier test."""
    limits.forget_paused()
