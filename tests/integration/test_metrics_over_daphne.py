"""GET /metrics through Daphne adds up every process: the submit counted by Daphne, the finish by the worker."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from django.contrib.auth.models import User
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import PASSWORD, UserFactory
from tests.integration.client import is_terminal_event, jobs_client, login
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KIND = {"kind": "demo.countdown"}


def scrape(base_url: str, cookie: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    request = urllib.request.Request(f"{base_url}/metrics", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True)


async def test_a_job_moves_the_counters_of_every_process(live_stack: LiveStack, staff: User) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, staff.username, PASSWORD)
    before = await asyncio.to_thread(scrape, live_stack.base_url, cookie)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        job = await client.submit("demo.countdown", {"steps": 2, "interval_ms": 10})
        events = await client.receive_until(is_terminal_event(job["id"]), timeout=60)
        assert events[-1]["type"] == "job.succeeded"
        during = await asyncio.to_thread(scrape, live_stack.base_url, cookie)

    def grew(name: str, **labels: str) -> float:
        return value(during, name, **labels) - value(before, name, **labels)

    assert grew("jobs_submitted_total", **KIND) == 1  # counted in Daphne
    assert grew("jobs_finished_total", **KIND, status="succeeded") == 1  # counted in a worker process
    assert grew("jobs_duration_seconds_count", **KIND) == 1
    assert grew("jobs_events_published_total") >= 4  # queued, started, succeeded (worker); queued (Daphne)
    assert value(during, "jobs_websocket_connections") >= 1  # this socket, open while scraping


def test_anonymous_scrapes_are_refused(live_stack: LiveStack) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{live_stack.base_url}/metrics", timeout=10)
    assert refused.value.code == 401
