"""What the broker holds: the ids of tasks waiting in a queue or delivered but not acknowledged.

The reconciler reads them to tell a queued job whose message is lost (Redis
restarted empty, the broker was down at submit, a queue was purged) from one
that is merely waiting its turn.

Redis (kombu's key layout, patches.kombu) lists every id, queued or delivered.
RabbitMQ cannot list a queue's messages without consuming them, only count them
(a passive queue.declare): `held` says which queues hold messages, and the
reconciler asks the live workers about the rest (docs/operations.md, "Brokers").
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import amqp.exceptions
import redis
from celery import current_app
from django.conf import settings
from kombu import Connection, Queue
from kombu.exceptions import OperationalError

from patches import kombu
from tasks import kinds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """The task ids in the broker: waiting in a queue, or delivered to a worker and not yet acknowledged.

    On RabbitMQ no id is known (`lists_ids` is False): `unlisted` names the queues that hold messages, any of
    which may be a given task's, and a delivered task is known only to the worker it was delivered to.
    """

    waiting: frozenset[str]
    delivered: frozenset[str]
    unlisted: frozenset[str] = frozenset()
    lists_ids: bool = True

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.waiting or task_id in self.delivered

    def may_hold(self, task_id: str, queue: str | None) -> bool:
        """Might this task's message be in the broker? `queue` is the task's (None: not known, any queue)."""
        if task_id in self:
            return True
        return queue in self.unlisted if queue is not None else bool(self.unlisted)


def held() -> Held | None:
    """What the broker holds (Redis: every id; RabbitMQ: which queues are not empty); None if it cannot be read."""
    if is_rabbitmq():
        counts = _rabbitmq_counts(_queue_names(), timeout=5)
        if counts is None:
            return None
        waiting = frozenset(name for name, count in counts.items() if count)
        return Held(frozenset(), frozenset(), unlisted=waiting, lists_ids=False)
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

    On Redis, a delivered message stays in the unacked set when its worker dies,
    until the visibility timeout (BROKER_VISIBILITY_TIMEOUT) hands it out again;
    on RabbitMQ, a delivered message is in no queue's count. Either way the
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
    """The message priority that puts a job of this protocol priority before the lower ones.

    Redis: its step's list (lower is first). RabbitMQ: higher is first, up to the queues' x-max-priority,
    which periodic tasks get by default (core.settings), so they go first as on Redis: high 9, normal 6, low 3.
    """
    if is_rabbitmq():
        return int(settings.RABBITMQ_MAX_PRIORITY) - _REDIS_STEPS[priority]
    return _REDIS_STEPS[priority]


def is_rabbitmq() -> bool:
    return str(settings.CELERY_BROKER_URL).startswith(("amqp://", "amqps://"))


def _queue_names() -> set[str]:
    return {current_app.conf.task_default_queue, *kinds.queues()}


def _queue_keys() -> Iterable[str]:
    for name in _queue_names():
        yield from kombu.queue_keys(name)


def _rabbitmq_counts(names: Collection[str], timeout: float) -> dict[str, int] | None:
    """The ready messages of each queue (not those delivered and unacknowledged); None if RabbitMQ cannot say.

    A queue that does not exist holds nothing: 0.
    """
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=int(timeout))
            return {name: _message_count(connection, name) for name in sorted(names)}
    except (OSError, OperationalError, amqp.exceptions.AMQPError) as exc:
        logger.warning("cannot count the messages in RabbitMQ's queues: %s", exc)
        return None


def _message_count(connection: Connection, name: str) -> int:
    channel = connection.channel()
    try:
        # Passive: only asks, so it neither creates the queue nor clashes with its arguments (x-max-priority).
        declared: Any = Queue(name, channel=channel).queue_declare(passive=True)  # (name, messages, consumers)
    except amqp.exceptions.NotFound:
        return 0  # the server closed this channel; the connection goes on
    else:
        channel.close()  # type: ignore[attr-defined]  # kombu's stubs leave close() out of StdChannel
    return int(declared.message_count)


def queue_lengths() -> dict[str, int | None]:
    """How many messages wait in each queue a kind names (all priority steps); None for all if the broker cannot say.

    On RabbitMQ, the messages ready in the queue: those delivered to a worker and not acknowledged yet are not
    counted, as on Redis, where they leave the queue's lists for the unacked hash.
    """
    names = _queue_names()
    if is_rabbitmq():
        ready = _rabbitmq_counts(names, timeout=2)
        return dict.fromkeys(names) if ready is None else dict(ready)
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
        return dict.fromkeys(names)
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
