"""Settings come from the environment and a bad value fails at start, naming the variable."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.settings import base
from envconfig import env


def test_it_reads_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env.get_bool("X_BOOL", False) is True
    assert env.get_int("X_INT", 1) == 42
    assert env.get_list("X_LIST", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_LIMITS", " file.process=4, email.send=2 ")
    assert env.get_limits("X_LIMITS") == {"file.process": 4, "email.send": 2}
    assert env.get_limits("X_UNSET_LIMITS") == {}
    monkeypatch.setenv("X_RATE", "14/second")
    assert env.get_rate("X_RATE") == "14/second"
    assert env.get_rate("X_UNSET_RATE") == ""
    assert env.get_str("X_MISSING", "fallback") == "fallback"


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("DEBUG", "maybe", lambda: env.get_bool("DEBUG", False)),
        ("JOBS_PROGRESS_INTERVAL", "fast", lambda: env.get_float("JOBS_PROGRESS_INTERVAL", 0.1)),
        ("CHANNELS_CAPACITY", "2", lambda: env.get_int("CHANNELS_CAPACITY", 100, minimum=10)),
        ("DATABASE_URL", "mysql://db/x", lambda: env.get_database("DATABASE_URL", "sqlite:///x")),
        ("REDIS_URL", "http://127.0.0.1:6379/0", lambda: env.get_redis_url("REDIS_URL", "redis://x")),
        ("REDIS_URL", "redis://127.0.0.1:6379/zero", lambda: env.get_redis_url("REDIS_URL", "redis://x")),
        ("CHANNELS_REDIS_URLS", "redis://a/0,http://b/0", lambda: env.get_redis_urls("CHANNELS_REDIS_URLS", [])),
        ("CHANNEL_LAYER", "rabbitmq", lambda: env.get_choice("CHANNEL_LAYER", "core", ("core", "pubsub"))),
        ("EMAIL_URL", "carrier-pigeon://coop", lambda: env.get_email("EMAIL_URL", "consolemail://")),
        ("EMAIL_URL", "filemail://relative/path", lambda: env.get_email("EMAIL_URL", "consolemail://")),
        ("JOBS_CONCURRENCY", "file.process:4", lambda: env.get_limits("JOBS_CONCURRENCY")),
        ("JOBS_CONCURRENCY", "file.process=0", lambda: env.get_limits("JOBS_CONCURRENCY")),
        ("JOBS_CONCURRENCY", "a=1,a=2", lambda: env.get_limits("JOBS_CONCURRENCY")),
        ("EMAIL_RATE_LIMIT", "fast", lambda: env.get_rate("EMAIL_RATE_LIMIT")),
        ("EMAIL_RATE_LIMIT", "10/minute;100/hour", lambda: env.get_rate("EMAIL_RATE_LIMIT")),
        ("EMAIL_RATE_LIMIT", "0/minute", lambda: env.get_rate("EMAIL_RATE_LIMIT")),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: object) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        read()  # type: ignore[operator]


def test_a_missing_required_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        env.get_str("SECRET_KEY")


CHANNEL_VARIABLES = ("REDIS_URL", "CHANNELS_REDIS_URLS", "CHANNEL_LAYER", "CHANNELS_PREFIX")


def _base_settings(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    """core.settings.base run afresh under this environment; the settings of this process stay as they are."""
    for name in CHANNEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(base.__file__)


def _layer(values: dict[str, Any]) -> tuple[str, list[str]]:
    layer = values["CHANNEL_LAYERS"]["default"]
    return layer["BACKEND"], [host["address"] for host in layer["CONFIG"]["hosts"]]


def test_the_channel_layer_uses_redis_url_alone_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _base_settings(monkeypatch, REDIS_URL="redis://broker:6379/3")
    assert values["CHANNELS_REDIS_URLS"] == ["redis://broker:6379/3"]
    assert _layer(values)[1] == ["redis://broker:6379/3"]


@pytest.mark.parametrize(
    ("kind", "backend"),
    [
        ("core", "channels_redis.core.RedisChannelLayer"),
        ("pubsub", "channels_redis.pubsub.RedisPubSubChannelLayer"),
    ],
)
def test_channel_layer_picks_the_backend_and_shards_over_every_listed_redis_in_order(
    monkeypatch: pytest.MonkeyPatch, kind: str, backend: str
) -> None:
    values = _base_settings(
        monkeypatch,
        CHANNEL_LAYER=kind,
        REDIS_URL="redis://broker:6379/0",
        CHANNELS_REDIS_URLS=" redis://shard-1:6379/0, rediss://shard-2:6380/2 ,",
    )
    assert values["CHANNELS_REDIS_URLS"] == ["redis://shard-1:6379/0", "rediss://shard-2:6380/2"]
    assert _layer(values) == (backend, ["redis://shard-1:6379/0", "rediss://shard-2:6380/2"])
    # Only the channel layer is sharded: the Celery broker and the rate-limit counters stay on REDIS_URL.
    assert values["CELERY_BROKER_URL"] == values["THROTTLE_REDIS_URL"] == "redis://broker:6379/0"


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("CHANNELS_REDIS_URLS", "redis://shard-1:6379/0,http://shard-2:6379/0", "CHANNELS_REDIS_URLS (item 2)"),
        ("CHANNELS_REDIS_URLS", "redis://shard-1:6379/zero,redis://shard-2:6379/0", "CHANNELS_REDIS_URLS (item 1)"),
        ("CHANNELS_REDIS_URLS", "redis://shard-1:6379/0,redis:///0", "CHANNELS_REDIS_URLS (item 2)"),
        ("CHANNELS_REDIS_URLS", " , ", "CHANNELS_REDIS_URLS"),
        ("CHANNEL_LAYER", "rabbitmq", "CHANNEL_LAYER"),
        ("CHANNEL_LAYER", "PubSub", "CHANNEL_LAYER"),
    ],
)
def test_a_bad_channel_layer_setting_stops_the_settings_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(named)):
        _base_settings(monkeypatch, **{name: value})


def _django_check(settings_module: str, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "EMAIL_URL"}}
    clean.update(environment, DJANGO_SETTINGS_MODULE=settings_module)
    command = [sys.executable, "manage.py", "check", *args]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=60, check=False)


def test_the_service_refuses_to_start_with_a_bad_value() -> None:
    result = _django_check("core.settings.local", REDIS_URL="http://nowhere")
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


PRODUCTION = {"SECRET_KEY": "s3cret", "ALLOWED_HOSTS": "jobs.example", "EMAIL_URL": "smtp://mail.example:25"}


def test_production_requires_a_secret_key_and_refuses_debug() -> None:
    missing = _django_check("core.settings.production", ALLOWED_HOSTS="jobs.example", EMAIL_URL="smtp://mail.example")
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
    debug = _django_check("core.settings.production", **PRODUCTION, DEBUG="true")
    assert debug.returncode != 0 and "DEBUG" in debug.stderr
    fine = _django_check("core.settings.production", **PRODUCTION)
    assert fine.returncode == 0, fine.stderr


@pytest.mark.parametrize("environment", [{}, {"EMAIL_URL": ""}, {"EMAIL_URL": "  "}], ids=["unset", "empty", "blank"])
def test_production_refuses_to_start_without_an_email_url(environment: dict[str, str]) -> None:
    """Else it would inherit the local default, filemail://, and quietly send nothing."""
    result = _django_check("core.settings.production", SECRET_KEY="s3cret", ALLOWED_HOSTS="jobs.example", **environment)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: EMAIL_URL must be set"), result.stderr


def test_production_settings_pass_djangos_deployment_checks() -> None:
    secret = "k9#Qz!2vLm@8pWx$4rTy%6uIo^1aSd&3fGh*5jKl(7zXc)0vBnM-qE_wR+tY"  # long and varied, as Django asks
    result = _django_check(
        "core.settings.production",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secret,
        ALLOWED_HOSTS="jobs.example",
        EMAIL_URL="smtp+tls://jobs:password@mail.example:587",
    )
    assert result.returncode == 0, result.stdout + result.stderr
