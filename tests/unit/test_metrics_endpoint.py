"""GET /metrics: Prometheus text for a METRICS_TOKEN bearer or a staff session; nobody else."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from accounts import tokens
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SCRAPE_TOKEN = "s" * 40


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True)


def test_anonymous_is_refused_with_401_and_a_bearer_challenge(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"jobs_" not in response.content


def test_a_user_who_is_not_staff_is_refused_with_403(client: Client, user: User) -> None:
    client.force_login(user)
    assert client.get("/metrics").status_code == 403


def test_a_staff_session_reads_the_metrics(client: Client, staff: User) -> None:
    client.force_login(staff)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in (
        "jobs_submitted_total",
        "jobs_finished_total",
        "jobs_duration_seconds",
        "jobs_websocket_connections",
        "jobs_events_published_total",
        "jobs_events_dropped_total",
        "jobs_publish_latency_seconds",
        "jobs_rate_limited_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


def test_the_metrics_token_opens_it_for_a_scraper(client: Client, settings: Settings) -> None:
    settings.METRICS_TOKEN = SCRAPE_TOKEN
    assert client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40}).status_code == 401


def test_without_a_metrics_token_configured_no_bearer_opens_it(client: Client, settings: Settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_a_personal_api_token_does_not_open_it_even_for_staff(client: Client, staff: User) -> None:
    # API tokens open /ws/jobs/ and /api/ only (SECURITY.md); metrics have their own secret.
    _, raw = tokens.create(staff, "script")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_only_get_is_answered(client: Client, staff: User) -> None:
    client.force_login(staff)
    assert client.post("/metrics").status_code == 405
