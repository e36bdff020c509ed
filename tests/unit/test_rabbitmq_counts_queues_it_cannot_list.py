"""On a real RabbitMQ (a vhost of this module's own): the queue lengths come from a passive queue.declare,
`held` names the queues that hold messages (it cannot list ids), and a broker that does not answer says
nothing (None), so the reconciler resends nothing it cannot see."""

from __future__ import annotations

import pytest
from celery import Celery
from pytest_django.fixtures import Settings

from tasks import broker, kinds
from tests.rabbitmq import purge

pytestmark = [pytest.mark.rabbitmq]


def test_each_queue_counts_its_waiting_messages_and_held_names_the_queues_that_hold_some(
    settings: Settings, rabbitmq_vhost: str
) -> None:
    settings.CELERY_BROKER_URL = rabbitmq_vhost
    app = Celery(broker=rabbitmq_vhost, set_as_current=False)
    try:
        app.send_task("demo.countdown", args=["x"], task_id="in-default", queue="default")
        app.send_task("file.process", args=["y"], task_id="in-files-1", queue="files")
        app.send_task("file.process", args=["z"], task_id="in-files-2", queue="files")
        lengths = broker.queue_lengths()
        held = broker.held()
        purge(rabbitmq_vhost, "files")
        purge(rabbitmq_vhost, "default")
        after = broker.held()
    finally:
        app.close()
    assert lengths["default"] == 1 and lengths["files"] == 2
    assert set(lengths) == {"default", *kinds.queues()}
    assert all(lengths[name] == 0 for name in set(lengths) - {"default", "files"})  # never declared: none
    assert held is not None and held.unlisted == {"default", "files"} and not held.lists_ids
    assert held.may_hold("any-task-id", "files") and not held.may_hold("any-task-id", "emails")
    assert after is not None and after.unlisted == frozenset()


def test_a_rabbitmq_that_does_not_answer_says_nothing(settings: Settings) -> None:
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1
    assert broker.held() is None
    assert set(broker.queue_lengths().values()) == {None}
