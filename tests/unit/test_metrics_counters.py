"""The metrics move where things happen: submits, final states, sockets, publishing, rate limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from prometheus_client import REGISTRY
from pytest_django.fixtures import Settings

from gateway.consumers import JobsConsumer
from tasks import services
from tests.unit.sockets import connected
from transport.publisher import publisher

KIND = "demo.countdown"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delta(name: str, **labels: str) -> Callable[[], float]:
    """How much a sample has grown since this call (the registry lives as long as the test process)."""
    before = sample(name, **labels)
    return lambda: sample(name, **labels) - before


@pytest.mark.django_db
def test_a_submit_counts_once_per_job_not_per_request_id_repeat(user: User) -> None:
    submitted = delta("jobs_submitted_total", kind=KIND)
    services.submit(user, "r1", KIND, {"steps": 2})
    services.submit(user, "r1", KIND, {"steps": 2})  # the same request again: the same job
    assert submitted() == 1


@pytest.mark.django_db(transaction=True)  # final states are counted once committed
def test_a_job_that_succeeds_counts_as_finished_with_its_duration(user: User) -> None:
    succeeded = delta("jobs_finished_total", kind=KIND, status="succeeded")
    durations = delta("jobs_duration_seconds_count", kind=KIND)
    job, _ = services.submit(user, "r1", KIND, {"steps": 2})
    services.start(str(job.pk), job.celery_task_id)
    assert succeeded() == 0  # starting is not finishing
    services.succeed(str(job.pk), {"steps": 2}, None)
    assert (succeeded(), durations()) == (1, 1)


@pytest.mark.django_db(transaction=True)  # final states are counted once committed
def test_failed_and_cancelled_jobs_count_by_status(user: User) -> None:
    failed = delta("jobs_finished_total", kind=KIND, status="failed")
    cancelled = delta("jobs_finished_total", kind=KIND, status="cancelled")
    durations = delta("jobs_duration_seconds_count", kind=KIND)
    first, _ = services.submit(user, "r1", KIND, {"steps": 2})
    second, _ = services.submit(user, "r2", KIND, {"steps": 2})
    services.fail(str(first.pk), "demo_failure", "failed on purpose")
    services.cancel(user, str(second.pk))
    assert (failed(), cancelled()) == (1, 1)
    assert durations() == 0  # neither ever started


def test_the_publisher_counts_what_it_sends_and_how_long_it_took() -> None:
    published = delta("jobs_events_published_total")
    latencies = delta("jobs_publish_latency_seconds_count")
    publisher.send("user.1", "{}")
    assert publisher.flush(timeout=2)
    assert (published(), latencies()) == (1, 1)


def test_the_publisher_counts_what_it_drops() -> None:
    dropped = delta("jobs_events_dropped_total")
    publisher._drop("test")
    assert dropped() == 1


@pytest.mark.django_db(transaction=True)
async def test_open_sockets_are_counted_while_open(user: User) -> None:
    connections = delta("jobs_websocket_connections")
    async with connected(user), connected(user):
        assert connections() == 2
    assert connections() == 0


@pytest.mark.django_db(transaction=True)
async def test_an_anonymous_socket_is_not_counted() -> None:
    connections = delta("jobs_websocket_connections")
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    await communicator.connect()
    await communicator.disconnect()
    assert connections() == 0


@pytest.mark.django_db(transaction=True)
async def test_rate_limited_answers_are_counted(user: User, settings: Settings) -> None:
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 1
    limited = delta("jobs_rate_limited_total")
    async with connected(user) as (socket, _):
        assert (await socket.request({"type": "ping"}))["type"] == "pong"
        assert (await socket.request({"type": "ping"}))["code"] == "rate_limited"
    assert limited() == 1
