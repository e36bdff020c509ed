"""Settings come from the environment and a bad value fails at start, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import env


def test_it_reads_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env.get_bool("X_BOOL", False) is True
    assert env.get_int("X_INT", 1) == 42
    assert env.get_list("X_LIST", []) == ["a.example", "b.example"]
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
        ("EMAIL_URL", "carrier-pigeon://coop", lambda: env.get_email("EMAIL_URL", "consolemail://")),
        ("EMAIL_URL", "filemail://relative/path", lambda: env.get_email("EMAIL_URL", "consolemail://")),
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


def _django_check(settings_module: str, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}}
    clean.update(environment, DJANGO_SETTINGS_MODULE=settings_module)
    command = [sys.executable, "manage.py", "check", *args]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=60, check=False)


def test_the_service_refuses_to_start_with_a_bad_value() -> None:
    result = _django_check("core.settings.local", REDIS_URL="http://nowhere")
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


def test_production_requires_a_secret_key_and_refuses_debug() -> None:
    missing = _django_check("core.settings.production", ALLOWED_HOSTS="jobs.example")
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
    debug = _django_check("core.settings.production", SECRET_KEY="s3cret", ALLOWED_HOSTS="jobs.example", DEBUG="true")
    assert debug.returncode != 0 and "DEBUG" in debug.stderr
    fine = _django_check("core.settings.production", SECRET_KEY="s3cret", ALLOWED_HOSTS="jobs.example")
    assert fine.returncode == 0, fine.stderr


def test_production_settings_pass_djangos_deployment_checks() -> None:
    secret = "k9#Qz!2vLm@8pWx$4rTy%6uIo^1aSd&3fGh*5jKl(7zXc)0vBnM-qE_wR+tY"  # long and varied, as Django asks
    result = _django_check(
        "core.settings.production",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=secret,
        ALLOWED_HOSTS="jobs.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
