"""The operations view's queue lengths: each queue's messages over all its priority lists, read from a real
Redis; nothing (None) from a broker that does not answer. (RabbitMQ's: test_rabbitmq_counts_queues_it_cannot_list.)"""

from __future__ import annotations

import redis
from pytest_django.fixtures import Settings

from patches import kombu
from tasks import broker, kinds

BROKER_DB = 3  # of the private Redis (THROTTLE_DB is 1, test_reconciler uses 2)


def test_each_queue_counts_its_messages_over_every_priority_list(settings: Settings, redis_server: str) -> None:
    settings.CELERY_BROKER_URL = f"{redis_server}/{BROKER_DB}"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.flushdb()
        first, *others = list(kombu.queue_keys("files"))
        client.rpush(first, "a", "b")
        client.rpush(others[-1], "c")
        client.rpush("default", "d")
        lengths = broker.queue_lengths()
    finally:
        client.flushdb()
        client.close()
    assert lengths["files"] == 3 and lengths["default"] == 1
    assert set(lengths) >= {"default", *kinds.queues()}
    assert all(lengths[name] == 0 for name in set(lengths) - {"files", "default"})


def test_a_silent_broker_says_nothing(settings: Settings) -> None:
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1
    assert set(broker.queue_lengths().values()) == {None}
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert set(broker.queue_lengths().values()) == {None}
