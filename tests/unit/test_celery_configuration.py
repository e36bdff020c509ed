"""Celery is set up for at-least-once execution of idempotent jobs, visible in Flower."""

from __future__ import annotations

import pytest

from celery_app import app
from core import stack
from tasks import kinds


def test_tasks_are_acknowledged_late_one_at_a_time_and_requeued_when_a_worker_dies() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_only_json_crosses_the_broker() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]


def test_task_events_are_off_until_flower_turns_them_on() -> None:
    # A job pays for Celery's events only while Flower watches (Flower enables them in the workers it
    # sees; test_flower_shows_job_tasks proves it does, with workers started without --task-events).
    assert app.conf.worker_send_task_events is False
    assert app.conf.task_send_sent_event is False
    assert "--task-events" not in stack.worker_command("w", 1)


@pytest.mark.parametrize("name", kinds.names())
def test_every_kind_has_a_celery_task_with_time_limits_below_the_visibility_timeout(name: str) -> None:
    """Redis redelivers an unacknowledged task after the visibility timeout: a task still
    running then would run twice. Every kind's hard limit must end well before that."""
    app.loader.import_default_modules()
    kind = kinds.get(name)
    task = app.tasks[kind.task_name]
    assert (task.soft_time_limit, task.time_limit) == (kind.soft_time_limit, kind.time_limit)
    assert kind.soft_time_limit < kind.time_limit
    visibility_timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert kind.time_limit + 60 < visibility_timeout
