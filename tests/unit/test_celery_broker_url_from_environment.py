"""CELERY_BROKER_URL may name a RabbitMQ (or another Redis) while everything else stays on REDIS_URL; unset, the
broker is REDIS_URL as before; a URL of another scheme fails at start, naming the variable. On RabbitMQ, every
kind's hard time limit must end before the server's consumer_timeout, as it must before Redis' visibility timeout."""

from __future__ import annotations

import runpy
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings

from core.settings import base
from tasks import kinds

BROKER_VARIABLES = ("REDIS_URL", "CELERY_BROKER_URL", "CHANNELS_REDIS_URLS", "RABBITMQ_CONSUMER_TIMEOUT")


def base_settings(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    for name in BROKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(base.__file__)


def test_unset_the_broker_is_redis_url_and_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    values = base_settings(monkeypatch, REDIS_URL="redis://cache:6379/2")
    assert values["CELERY_BROKER_URL"] == "redis://cache:6379/2"
    assert values["BROKER_IS_RABBITMQ"] is False
    assert values["BROKER_ACK_TIMEOUT_SECONDS"] == values["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"]


@pytest.mark.parametrize("url", ["amqp://jobs:secret@rabbit:5672/jobs", "amqps://jobs:secret@rabbit:5671/jobs"])
def test_a_rabbitmq_broker_leaves_the_channel_layer_and_counters_on_redis(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    values = base_settings(monkeypatch, REDIS_URL="redis://cache:6379/0", CELERY_BROKER_URL=url)
    assert values["CELERY_BROKER_URL"] == url and values["BROKER_IS_RABBITMQ"] is True
    assert values["CHANNELS_REDIS_URLS"] == ["redis://cache:6379/0"]
    assert values["THROTTLE_REDIS_URL"] == "redis://cache:6379/0"
    assert values["BROKER_ACK_TIMEOUT_SECONDS"] == 30 * 60  # RabbitMQ's own default consumer_timeout
    assert values["CELERY_TASK_QUEUE_MAX_PRIORITY"] == values["CELERY_TASK_DEFAULT_PRIORITY"] == 9


def test_another_redis_may_be_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    values = base_settings(monkeypatch, CELERY_BROKER_URL="rediss://queue:6380/1")
    assert values["CELERY_BROKER_URL"] == "rediss://queue:6380/1" and values["BROKER_IS_RABBITMQ"] is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sqs://key:secret@", "must be a redis://, rediss://, amqp:// or amqps:// URL"),
        ("http://rabbit:15672/", "must be a redis://, rediss://, amqp:// or amqps:// URL"),
        ("amqp:///jobs", "names no host"),
        ("redis://queue:6379/zero", "database number"),
    ],
)
def test_a_bad_broker_url_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=f"CELERY_BROKER_URL.*{message}"):
        base_settings(monkeypatch, CELERY_BROKER_URL=value)


def test_on_rabbitmq_a_kind_must_end_before_the_consumer_timeout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))  # the kind registered here goes with the test
    settings.BROKER_IS_RABBITMQ = True
    settings.BROKER_ACK_TIMEOUT_SECONDS = 30 * 60
    long = kinds.Kind(
        name="test.long", params=kinds.get("demo.countdown").params, run=lambda ctx: None, soft_time_limit=29 * 60
    )
    with pytest.raises(ImproperlyConfigured, match=r"before RABBITMQ_CONSUMER_TIMEOUT \(1800 s\)"):
        kinds.register(long)
    settings.BROKER_ACK_TIMEOUT_SECONDS = 45 * 60  # the operator raised consumer_timeout, and said so
    assert kinds.register(long) is long
