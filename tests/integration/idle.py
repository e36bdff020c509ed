"""Leaving a live stack idle after a test, before pytest-django flushes the test database.

A test may end while the stack still works for it: a flood's accepted jobs
still running, a job that was never waited for. The flush (TRUNCATE on
PostgreSQL, an AccessExclusiveLock on every table) then races those processes:
a worker finishing a job locks the job's row, then inserts the owner's
notification, while TRUNCATE holds one table and waits for the other, and
PostgreSQL kills one of them as a deadlock. So, after every test that used a
stack:

1. every unfinished job is cancelled in the database (a running one stops at
   its next progress report; a queued one is refused when its task claims it);
2. we wait until the broker holds no waiting task, no live worker has a task
   active or reserved, and no other database session is inside a transaction.
"""

from __future__ import annotations

import time

import amqp.exceptions
import redis
from celery import Celery
from django.db import connection
from django.db.models import F
from django.utils import timezone
from kombu import Connection, Queue
from kombu.exceptions import OperationalError

from tasks import kinds
from tasks.models import UNFINISHED, Job, JobStatus

# Lists in a stack's Redis that are not task queues: the channel layer's (CHANNELS_PREFIX), and the reply
# queues of Celery's remote control (`<oid>.reply.celery.pidbox`), where a late reply to `inspect` may stay.
CHANNEL_LAYER_PREFIX = b"asgi"
REPLY_QUEUE_SUFFIX = b".pidbox"


def settle(redis_url: str | None, workers: int, timeout: float = 60) -> None:
    """Stop what the stack still does for the test that ended, and wait until it leaves the database alone.

    `redis_url` is the stack's broker, None while it is down (a fault test that failed
    before restoring it): then only the database is waited for.
    """
    cancel_unfinished_jobs()
    deadline = time.monotonic() + timeout
    while True:
        busy = what_is_busy(redis_url, workers)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the stack did not go idle within {timeout:.0f} s after the test: {busy}")
        time.sleep(0.1)


def cancel_unfinished_jobs() -> int:
    return Job.objects.filter(status__in=UNFINISHED).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), seq=F("seq") + 1
    )


def what_is_busy(redis_url: str | None, workers: int) -> str:
    """What still works, in words; empty when the stack is idle."""
    if redis_url is None:
        return _database_busy()
    try:
        return _broker_busy(redis_url, workers) or _database_busy()
    except (OSError, redis.RedisError, OperationalError, amqp.exceptions.AMQPError) as exc:
        # A broker that has just restarted may drop a first connection: ask again.
        return f"the broker did not answer ({type(exc).__name__}: {exc})"


def _broker_busy(redis_url: str, workers: int) -> str:
    waiting = waiting_tasks(redis_url)
    if waiting:
        return f"task messages waiting in the broker: {waiting}"
    running = tasks_in_workers(redis_url, workers)
    if running is None:
        return f"not every one of the {workers} worker(s) answered"
    if running:
        return f"{running} task(s) active or reserved in a worker"
    return ""


def _database_busy() -> str:
    sessions = sessions_in_a_transaction()
    if sessions:
        return f"{sessions} other database session(s) inside a transaction"
    return ""


def waiting_tasks(redis_url: str) -> dict[str, int]:
    """The task queues that hold messages, with how many each (`redis_url` may be a RabbitMQ's amqp:// URL)."""
    if redis_url.startswith("amqp"):
        return _rabbitmq_waiting(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        lengths = {key.decode(): client.llen(key) for key in client.scan_iter(_type="list") if _is_task_queue(key)}
    finally:
        client.close()
    return {key: length for key, length in lengths.items() if length}


def _rabbitmq_waiting(url: str) -> dict[str, int]:
    """RabbitMQ lists no queues to a client: count the ones the workers consume (those of every kind)."""
    names = {"default", *kinds.queues()}
    with Connection(url) as connection:
        counts = {name: _ready(connection, name) for name in names}
    return {name: count for name, count in counts.items() if count}


def _ready(connection: Connection, name: str) -> int:
    channel = connection.channel()
    try:
        return int(Queue(name, channel=channel).queue_declare(passive=True).message_count)  # type: ignore[union-attr]
    except amqp.exceptions.NotFound:
        return 0
    finally:
        channel.close()  # type: ignore[attr-defined]


def _is_task_queue(key: bytes) -> bool:
    return not key.startswith(CHANNEL_LAYER_PREFIX) and not key.endswith(REPLY_QUEUE_SUFFIX)


def tasks_in_workers(redis_url: str, workers: int) -> int | None:
    """Tasks active or reserved in the stack's live workers; None if not all of them answered."""
    if workers == 0:
        return 0
    app = Celery(broker=redis_url, set_as_current=False)
    try:
        # limit: return as soon as every worker replied, not after the whole timeout.
        inspect = app.control.inspect(timeout=2, limit=workers)
        active, reserved = inspect.active(), inspect.reserved()
    finally:
        app.close()
    if active is None or reserved is None or len(active) < workers or len(reserved) < workers:
        return None
    return sum(len(tasks) for tasks in active.values()) + sum(len(tasks) for tasks in reserved.values())


def sessions_in_a_transaction() -> int:
    """Other sessions on the test database inside a transaction (PostgreSQL; SQLite's flush only waits)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND xact_start IS NOT NULL"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
