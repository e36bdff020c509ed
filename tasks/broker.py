"""What the Redis broker holds: the ids of tasks waiting in a queue or delivered but not acknowledged.

The reconciler reads both to tell a queued job whose message is lost (Redis
restarted empty) from one that is merely waiting its turn. The key layout is
kombu's (patches.kombu).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import redis
from celery import current_app
from django.conf import settings

from patches import kombu
from tasks import kinds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """The task ids in the broker: waiting in a queue, or delivered to a worker and not yet acknowledged."""

    waiting: frozenset[str]
    delivered: frozenset[str]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.waiting or task_id in self.delivered


def held() -> Held | None:
    """Every task id in the broker's queues and unacked set; None if Redis cannot be read."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        queued = [kombu.task_id(raw) for key in _queue_keys() for raw in client.lrange(key, 0, -1)]
        delivered = [kombu.unacked_task_id(entry) for entry in client.hvals(kombu.UNACKED_KEY)]
    except (redis.RedisError, ValueError, IndexError) as exc:
        logger.warning("cannot read the broker's queues: %s", exc)
        return None
    finally:
        client.close()
    return Held(_ids(queued), _ids(delivered))


def _ids(found: Iterable[str | None]) -> frozenset[str]:
    return frozenset(task_id for task_id in found if task_id is not None)


def known_to_workers(task_ids: Collection[str], timeout: float = 1.0) -> set[str] | None:
    """Those of `task_ids` that a live worker holds (reserved, running or waiting for its ETA).

    A delivered message stays in the unacked set when its worker dies, until the
    visibility timeout (BROKER_VISIBILITY_TIMEOUT) hands it out again: the
    workers are the only ones that can say which of them are still theirs.
    None if the workers cannot be asked (the broker is down).
    """
    try:
        replies = current_app.control.inspect(timeout=timeout).query_task(*task_ids) or {}
    except Exception as exc:
        logger.warning("cannot ask the workers which tasks they hold: %s", exc)
        return None
    return {task_id for tasks in replies.values() for task_id in tasks or {}}


# Protocol priorities as kombu's Redis priority steps (0, 3, 6, 9): each step is a list of its own, and a
# worker pops the lists of step 0 first. Tasks sent with no priority (the periodic ones) are step 0 too.
_REDIS_STEPS = {"high": 0, "normal": 3, "low": 6}


def priority_of(priority: str) -> int:
    """The message priority that makes a job of this protocol priority wait in its step's list."""
    return _REDIS_STEPS[priority]


def _queue_keys() -> Iterable[str]:
    for name in {current_app.conf.task_default_queue, *kinds.queues()}:
        yield from kombu.queue_keys(name)


def queue_lengths() -> dict[str, int | None]:
    """How many messages wait in each queue a kind names (all priority steps); None for all if Redis cannot say."""
    names = {current_app.conf.task_default_queue, *kinds.queues()}
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
        return dict.fromkeys(names)  # another broker: its queues are not Redis lists to count
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in sorted(names):
                for key in kombu.queue_keys(name):
                    pipe.llen(key)
            counts = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("cannot read the broker's queue lengths: %s", exc)
        return dict.fromkeys(names)
    finally:
        client.close()
    steps = len(counts) // len(names)
    return {name: sum(counts[i * steps : (i + 1) * steps]) for i, name in enumerate(sorted(names))}


def workers_online(timeout: float = 1.0) -> list[str]:
    """The names of the Celery workers that answered a ping within `timeout` seconds."""
    try:
        replies = current_app.control.ping(timeout=timeout) or []
    except Exception as exc:  # the broker is down: nobody answers
        logger.warning("cannot ping the workers: %s", exc)
        return []
    return sorted(name for reply in replies for name in reply)
