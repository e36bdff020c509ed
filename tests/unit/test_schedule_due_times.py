"""Due times of a cron expression in a timezone, across Europe/Paris's clock changes of 2027
(28 March, 02:00 CET -> 03:00 CEST; 31 October, 03:00 CEST -> 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schedules.calendar import CalendarError, check, next_due


def due_times(expression: str, start: datetime, n: int, zone: str = "Europe/Paris") -> list[str]:
    found, after = [], start
    for _ in range(n):
        after = next_due(expression, zone, after)
        found.append(f"{after:%m-%d %H:%M}")
    return found


def test_a_daily_time_in_the_spring_gap_runs_once_an_hour_later_that_night() -> None:
    # 02:30 does not exist on 28 March: it runs at 03:30 CEST (01:30 UTC), once.
    start = datetime(2027, 3, 26, 12, 0, tzinfo=UTC)
    assert due_times("30 2 * * *", start, 4) == ["03-27 01:30", "03-28 01:30", "03-29 00:30", "03-30 00:30"]


def test_a_daily_time_in_the_autumn_fold_runs_once_at_its_first_occurrence() -> None:
    # 02:30 happens twice on 31 October: at 00:30 UTC (CEST) and 01:30 UTC (CET). Only the first.
    start = datetime(2027, 10, 29, 12, 0, tzinfo=UTC)
    assert due_times("30 2 * * *", start, 4) == ["10-30 00:30", "10-31 00:30", "11-01 01:30", "11-02 01:30"]


def test_an_every_hour_schedule_keeps_its_interval_through_the_fold() -> None:
    start = datetime(2027, 10, 30, 23, 50, tzinfo=UTC)
    every_quarter = [f"10-31 {hour:02}:{minute:02}" for hour in range(3) for minute in (0, 15, 30, 45)]
    assert due_times("*/15 * * * *", start, 12) == every_quarter


def test_an_every_hour_schedule_skips_no_real_time_in_the_gap() -> None:
    start = datetime(2027, 3, 28, 0, 50, tzinfo=UTC)
    expected = ["03-28 01:00", "03-28 01:15", "03-28 01:30", "03-28 01:45", "03-28 02:00"]
    assert due_times("*/15 * * * *", start, 5) == expected


def test_a_weekly_time_is_read_in_its_timezone() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)  # a Friday; Monday 08:00 in New York is 13:00 UTC in winter
    assert due_times("0 8 * * 1", start, 2, "America/New_York") == ["01-04 13:00", "01-11 13:00"]


def test_the_next_due_time_is_strictly_after() -> None:
    on_the_minute = datetime(2027, 5, 1, 8, 0, tzinfo=UTC)
    assert next_due("0 8 * * *", "UTC", on_the_minute) == datetime(2027, 5, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression", ["0 8 * *", "0 25 * * *", "@daily", "0 8 * * 1 2027", "0 0 31 2 *", "x y z w v", ""]
)
def test_what_is_not_a_five_field_expression_that_matches_is_refused(expression: str) -> None:
    with pytest.raises(CalendarError):
        check(expression)


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(CalendarError, match="IANA"):
        next_due("0 8 * * *", "Mars/Olympus_Mons", datetime(2027, 1, 1, tzinfo=UTC))
