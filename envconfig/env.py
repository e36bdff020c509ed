"""Typed, strict readers for settings taken from the environment.

Every reader names the variable in the error it raises, so a bad deployment
fails at start with a message an operator can act on, instead of a default
silently taking over (healthchecks and cookiecutter-django do the same).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import environ
import limits
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DB_ENGINES = {"django.db.backends.sqlite3", "django.db.backends.postgresql"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def get_str(name: str, default: str | None = None) -> str:
    """A string; without a default the variable is required."""
    value = _raw(name)
    if value is not None:
        return value
    if default is None:
        raise ImproperlyConfigured(f"{name} must be set in the environment.")
    return default


def get_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off).")


def get_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    _check_range(name, number, minimum, maximum)
    return number


def get_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    _check_range(name, number, minimum, maximum)
    return number


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}.")


def get_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def get_limits(name: str, *, minimum: int = 1) -> dict[str, int]:
    """Comma-separated `key=integer` pairs ("file.process=4,email.send=2"); empty: none."""
    limits: dict[str, int] = {}
    for item in get_list(name, []):
        key, sep, number = item.partition("=")
        if not sep or not key.strip() or not number.strip().isdigit():
            raise ImproperlyConfigured(f"{name}: {item!r} is not NAME=NUMBER (e.g. file.process=4).")
        if key.strip() in limits:
            raise ImproperlyConfigured(f"{name}: {key.strip()!r} is given twice.")
        limits[key.strip()] = int(number)
        _check_range(f"{name} {key.strip()}", int(number), minimum, None)
    return limits


def get_rate(name: str) -> str:
    """A rate in the `limits` library's notation ("14/second", "600 per minute", "10/5 seconds"); empty: none."""
    value = _raw(name)
    if value is None:
        return ""
    try:
        # One rate only: "a;b" would be several limits, which no reader here means.
        parsed = limits.parse_many(value)
    except ValueError:
        parsed = []
    if len(parsed) != 1 or parsed[0].amount < 1:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate such as 600/minute, 14/second or 10 per 5 seconds.")
    return value


def get_database(name: str, default: str) -> dict[str, Any]:
    """A Django DATABASES entry from a URL (sqlite:///path or postgres://...)."""
    url = get_str(name, default)
    try:
        config: dict[str, Any] = environ.Env.db_url_config(url)
    except Exception as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    if config.get("ENGINE") not in _DB_ENGINES:
        raise ImproperlyConfigured(
            f"{name} must be a sqlite:// or postgres:// URL, got scheme {urlsplit(url).scheme!r}."
        )
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} names no database.")
    return config


def get_redis_url(name: str, default: str) -> str:
    return _check_redis_url(name, get_str(name, default))


def _check_redis_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ImproperlyConfigured(f"{name} must be a redis://, rediss:// or unix:// URL, got {parts.scheme!r}.")
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{name} names no host.")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ImproperlyConfigured(f"{name} has a database number that is not a number: {db!r}.")
    return url


def get_broker_url(name: str, default: str) -> str:
    """A Celery broker URL: Redis (redis://, rediss://) or RabbitMQ (amqp://, amqps://). Unset: `default`,
    taken as it is (the caller checked it already)."""
    url = _raw(name)
    if url is None:
        return default
    parts = urlsplit(url)
    if parts.scheme not in _BROKER_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must be a redis://, rediss://, amqp:// or amqps:// URL, got {parts.scheme!r}."
        )
    if parts.scheme.startswith("redis"):
        return _check_redis_url(name, url)
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} names no host.")
    return url


def get_redis_urls(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of Redis URLs, each checked like get_redis_url."""
    urls = get_list(name, default)
    if not urls:
        raise ImproperlyConfigured(f"{name} is set but names no Redis URL.")
    for index, url in enumerate(urls):
        _check_redis_url(f"{name} (item {index + 1})", url)
    return urls


def get_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = get_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return value


def get_email(name: str, default: str) -> dict[str, Any]:
    """Django email settings from a URL: smtp://, smtp+tls://, smtps://, consolemail://, filemail:///path."""
    url = get_str(name, default)
    parts = urlsplit(url)
    if parts.scheme == "filemail":
        # django-environ drops the leading slash of the path; keep it absolute.
        path = Path(unquote(parts.path))
        if parts.netloc or not path.is_absolute():
            raise ImproperlyConfigured(f"{name}: filemail:// needs an absolute path, like filemail:///var/mail.")
        return {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(path)}
    try:
        config: dict[str, Any] = environ.Env.email_url_config(url)
    except Exception as exc:
        raise ImproperlyConfigured(f"{name} is not a valid email URL: {exc}") from None
    if config.get("EMAIL_BACKEND", "").endswith("smtp.EmailBackend") and not config.get("EMAIL_HOST"):
        raise ImproperlyConfigured(f"{name} names no SMTP host.")
    return {key: value for key, value in config.items() if value not in (None, "")}
