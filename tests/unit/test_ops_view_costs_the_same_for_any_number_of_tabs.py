"""The operations view's numbers are computed once per interval per process, however many staff tabs watch:
20 staff sockets cost what one does. And only staff may watch."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings

from tasks import broker, kinds, operations
from tasks.models import Job
from tests.factories import UserFactory
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)

TABS = 20
INTERVAL = 0.2


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, settings: Settings, redis_server: str) -> list[float]:
    """The times the numbers were computed; the broker is the session's private Redis, no worker answers."""
    settings.OPS_INTERVAL_SECONDS = INTERVAL
    settings.CELERY_BROKER_URL = f"{redis_server}/4"
    monkeypatch.setattr(broker, "workers_online", lambda timeout=1.0: ["worker@test"])
    calls: list[float] = []
    snapshot = operations.snapshot

    def counting(now: datetime) -> dict[str, Any]:
        calls.append(time.monotonic())
        return snapshot(now)

    monkeypatch.setattr(operations, "snapshot", counting)
    return calls


async def test_twenty_staff_tabs_cost_one_computation_per_interval(counted: list[float]) -> None:
    staff = await asyncio.to_thread(lambda: UserFactory.create(is_staff=True))
    async with AsyncExitStack() as stack:
        sockets = [(await stack.enter_async_context(connected(staff)))[0] for _ in range(TABS)]
        for socket in sockets:
            first = await socket.request({"type": "ops.subscribe"})
            assert first["type"] == "ops.stats" and first["workers"] == ["worker@test"]
        started = time.monotonic()
        for socket in sockets:  # every tab gets the periodic frames
            assert (await socket.receive(timeout=3))["type"] == "ops.stats"
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - started
    intervals = elapsed / INTERVAL
    # One computation per interval (plus the first, and one a subscriber may have triggered), not one per tab.
    assert len(counted) <= intervals + 3, (len(counted), intervals)
    assert len(counted) < TABS


def test_one_computation_is_a_few_aggregate_queries_on_indexes(user: User) -> None:
    now = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    for n, status in enumerate(["queued", "running", "succeeded", "failed"]):
        Job.objects.create(owner=user, request_id=f"r{n}", kind="demo.countdown", status=status)
    Job.objects.filter(status__in=["succeeded", "failed"]).update(finished_at=now - timedelta(minutes=5))
    Job.objects.filter(status="queued").update(hold="kind_limit")
    with CaptureQueriesContext(connection) as queries:
        numbers = operations.snapshot(now)
    # Four for the jobs, two for the kinds' controls (held jobs per kind, the paused kinds).
    assert len(queries) == 6
    controls = {row["kind"]: row for row in numbers["controls"]}
    assert controls["demo.countdown"] == {"kind": "demo.countdown", "paused": False, "limit": None, "held": 1}
    assert set(controls) == set(kinds.names())
    counts = numbers["kinds"]["demo.countdown"]
    assert (counts["queued"], counts["running"], counts["succeeded"], counts["failed"]) == (1, 1, 1, 1)
    series = numbers["per_minute"]
    assert len(series["minutes"]) == 60 and sum(series["finished"]) == 2 and sum(series["failed"]) == 1


async def test_only_staff_may_watch(user: User, counted: list[float]) -> None:
    async with connected(user) as (socket, _):
        refused = await socket.request({"type": "ops.subscribe", "request_id": "o"})
    assert (refused["code"], refused["request_id"]) == ("bad_message", "o")
    assert counted == []
