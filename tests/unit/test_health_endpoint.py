"""GET /healthz: 200 when database, Redis and a worker answer; 503 naming what does not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import OperationalError, connection
from django.test import Client
from pytest_django.fixtures import Settings

from core import health, stack

HEALTH_DB = 3  # its own database of the private Redis: the cached worker answer must not leak between tests
WORKER = "test-worker@host"

pytestmark = pytest.mark.django_db


class Pings(list[float]):
    """The worker pings made (their timeouts), answered by `names`."""

    names: list[str]


@pytest.fixture(autouse=True)
def health_redis(settings: Settings, redis_server: str) -> Iterator[str]:
    url = f"{redis_server}/{HEALTH_DB}"
    settings.REDIS_URL = url
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Pings:
    """No broker in unit tests: the Celery ping is replaced; tests choose who answers."""
    made = Pings()
    made.names = [WORKER]

    def ping(timeout: float) -> list[str]:
        made.append(timeout)
        return list(made.names)

    monkeypatch.setattr(health, "ping_workers", ping)
    return made


def get(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, response.json()


def test_everything_up_answers_200_ok(client: Client, pings: Pings) -> None:
    status, body = get(client)
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "workers"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["workers"]["replied"] == [WORKER]
    assert "failed" not in body


def test_a_dead_redis_answers_503_naming_redis_without_pinging_workers(
    client: Client, pings: Pings, settings: Settings
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{stack.free_port()}/0"
    status, body = get(client)
    assert status == 503
    assert body["status"] == "fail"
    assert body["failed"] == ["redis", "workers"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    # A ping goes through Redis: with Redis down it would only hang.
    assert pings == []


def test_no_worker_answers_503_naming_workers(client: Client, pings: Pings) -> None:
    pings.names = []
    status, body = get(client)
    assert status == 503
    assert body["failed"] == ["workers"]
    assert "no worker answered" in body["checks"]["workers"]["error"]


def test_a_failing_database_answers_503_naming_the_database(
    client: Client, pings: Pings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_cursor() -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    status, body = get(client)
    assert status == 503
    assert body["failed"] == ["database"]
    # The endpoint is public: the class of the error, never its text (hosts, users).
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}


def test_the_worker_answer_is_reused_for_a_while_by_every_process(client: Client, pings: Pings) -> None:
    first = get(client)[1]["checks"]["workers"]
    second = get(client)[1]["checks"]["workers"]
    assert len(pings) == 1
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["checked_at"] == first["checked_at"]


def test_a_missing_worker_is_seen_once_the_cached_answer_expires(
    client: Client, pings: Pings, health_redis: str
) -> None:
    assert get(client)[0] == 200
    pings.names = []
    assert get(client)[0] == 200  # still the cached answer
    redis.Redis.from_url(health_redis).delete(health.WORKERS_CACHE_KEY)  # what the TTL does
    assert get(client)[0] == 503


def test_the_cached_answer_expires_after_the_configured_seconds(
    client: Client, pings: Pings, settings: Settings, health_redis: str
) -> None:
    settings.HEALTH_WORKERS_CACHE_SECONDS = 12
    get(client)
    ttl = redis.Redis.from_url(health_redis).ttl(health.WORKERS_CACHE_KEY)
    assert 0 < ttl <= 12


def test_only_get_and_head_are_answered(client: Client, pings: Pings) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_it_needs_no_login(client: Client, pings: Pings) -> None:
    response = client.get("/healthz", follow=False)
    assert response.status_code == 200  # not a redirect to the login page
