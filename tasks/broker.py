"""What the Redis broker holds: the ids of tasks waiting in a queue or delivered but not acknowledged.

Kombu's Redis transport keeps a queue as a list (one per priority step) of
JSON messages whose headers carry the task id, and the delivered-but-unacked
messages in the "unacked" hash. The reconciler reads both to tell a queued
job whose message is lost (Redis restarted empty) from one that is merely
waiting its turn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import redis
from django.conf import settings

from celery_app import app

logger = logging.getLogger(__name__)

UNACKED_KEY = "unacked"
# kombu.transport.redis: PRIORITY_STEPS and the separator of the per-priority list names.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"


def task_ids() -> set[str] | None:
    """Every task id in the broker's queues and unacked set; None if Redis cannot be read."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        ids = set(_ids(_queued_messages(client)))
        ids.update(_ids(json.loads(entry)[0] for entry in client.hvals(UNACKED_KEY)))
    except (redis.RedisError, ValueError, IndexError) as exc:
        logger.warning("cannot read the broker's queues: %s", exc)
        return None
    finally:
        client.close()
    return ids


def _queued_messages(client: redis.Redis) -> Iterable[dict[str, object]]:
    for queue in _queue_names():
        for priority in PRIORITY_STEPS:
            key = queue if priority == 0 else f"{queue}{PRIORITY_SEPARATOR}{priority}"
            for raw in client.lrange(key, 0, -1):
                yield json.loads(raw)


def _queue_names() -> set[str]:
    names = {app.conf.task_default_queue}
    names.update(queue.name for queue in app.conf.task_queues or ())
    return names


def _ids(messages: Iterable[dict[str, object]]) -> Iterable[str]:
    for message in messages:
        headers = message.get("headers")
        if isinstance(headers, dict) and isinstance(headers.get("id"), str):
            yield headers["id"]
