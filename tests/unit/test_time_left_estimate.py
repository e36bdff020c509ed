"""eta_seconds: the time a running job has left, at the rate of its progress so far; unknown until it can be told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.estimates import eta_seconds

STARTED = datetime(2026, 4, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return STARTED + timedelta(seconds=seconds)


def test_a_quarter_done_in_ten_seconds_has_thirty_left() -> None:
    assert eta_seconds({"current": 25, "total": 100}, STARTED, at(10)) == 30.0


@pytest.mark.parametrize(
    ("progress", "started"),
    [
        ({"current": 0, "total": 100}, STARTED),  # nothing done yet: no rate
        ({"current": 5, "total": None}, STARTED),  # no total
        ({"current": 100, "total": 100}, STARTED),  # done
        ({"current": 5, "total": 100}, None),  # never started
    ],
)
def test_unknown_until_it_can_be_told(progress: dict[str, int | None], started: datetime | None) -> None:
    assert eta_seconds(progress, started, at(10)) is None
