"""On RabbitMQ a queue orders its messages by priority only when declared with x-max-priority, and a higher
number goes first (the reverse of Redis' steps): with the settings and priority_of, high is handed out
before normal before low, each in the order sent, and a periodic task (no priority) with the high ones."""

from __future__ import annotations

import runpy

import pytest
from celery import Celery
from kombu import Connection
from pytest_django.fixtures import Settings

from core.settings import base
from tasks import broker

pytestmark = [pytest.mark.rabbitmq]


def rabbitmq_settings(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, object]:
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    return runpy.run_path(base.__file__)


def test_the_queues_of_a_rabbitmq_broker_hand_out_high_then_normal_then_low(
    settings: Settings, rabbitmq_vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = rabbitmq_settings(monkeypatch, rabbitmq_vhost)
    settings.CELERY_BROKER_URL = rabbitmq_vhost
    app = Celery(broker=rabbitmq_vhost, set_as_current=False)
    # What celery_app.py reads from the settings: x-max-priority on every queue, the periodic tasks' priority.
    app.conf.task_queue_max_priority = values["CELERY_TASK_QUEUE_MAX_PRIORITY"]
    app.conf.task_default_priority = values["CELERY_TASK_DEFAULT_PRIORITY"]

    @app.task(name="jobs.reconcile", shared=False)
    def periodic() -> None:  # as beat sends it: apply_async, with no priority of its own
        """A stand-in for a periodic task."""

    sent = ["low-1", "normal-1", "high-1", "periodic", "low-2", "high-2", "normal-2"]
    try:
        for name in sent:
            if name == "periodic":
                periodic.apply_async(task_id=name, queue="priority-test")
            else:
                priority = broker.priority_of(name.split("-")[0])
                app.send_task("demo.countdown", task_id=name, queue="priority-test", priority=priority)
        handed_out = take_all(rabbitmq_vhost, "priority-test")
    finally:
        app.close()
    assert handed_out == ["high-1", "periodic", "high-2", "normal-1", "normal-2", "low-1", "low-2"]


def take_all(url: str, queue: str) -> list[str]:
    """The task ids of the queue's messages, in the order RabbitMQ hands them out."""
    ids: list[str] = []
    with Connection(url) as connection:
        channel = connection.channel()
        while (message := channel.basic_get(queue, no_ack=True)) is not None:  # type: ignore[attr-defined]
            ids.append(message.headers["id"])
    return ids


def test_redis_keeps_its_steps_and_declares_no_priority_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    values = rabbitmq_settings(monkeypatch, "redis://127.0.0.1:6379/0")
    assert "CELERY_TASK_QUEUE_MAX_PRIORITY" not in values and "CELERY_TASK_DEFAULT_PRIORITY" not in values
    assert [broker.priority_of(name) for name in ("high", "normal", "low")] == [0, 3, 6]
