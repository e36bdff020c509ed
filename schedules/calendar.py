"""Due times: when a cron expression, read in a timezone, is next due.

croniter walks the expression over wall-clock times (naive, so no daylight-saving
arithmetic goes wrong inside it); this module turns each wall-clock time into an
instant, with these rules for the two nights a year a zone changes its clocks:

* **A wall-clock time that does not exist** (clocks jump forward: 02:30 on the spring
  night in Europe/Paris) is read with the offset before the jump, so it runs that much
  later: 02:30 runs at 03:30, once. This is what zoneinfo, PostgreSQL and java.time do.
* **A wall-clock time that happens twice** (clocks go back: 02:30 on the autumn night)
  runs once, at its first occurrence, unless the hour field is `*`: a schedule that
  runs every hour of the day runs in both passes of the repeated hour, by real time
  (so `*/15 * * * *` keeps its interval), as Vixie cron does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

# The widest clock change of any zone (Antarctica/Troll moves two hours).
_CLOCK_CHANGE = timedelta(hours=2)
# Enough for an every-minute expression to cross that width twice; a sparse one needs a step or two.
_MAX_STEPS = 600


class CalendarError(ValueError):
    """An expression or timezone that cannot be used; the message says why, for the user."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"{name!r} is not an IANA timezone name, like Europe/Paris or UTC.") from None


def check(expression: str) -> None:
    """Refuse anything but a five-field cron expression that matches some time."""
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(expression):
        raise CalendarError("Give a five-field cron expression (minute hour day month weekday), like '0 8 * * 1'.")
    try:
        next_due(expression, "UTC", datetime(2000, 1, 1, tzinfo=UTC))
    except CalendarError:
        raise CalendarError("The cron expression never matches a date.") from None


def next_due(expression: str, timezone: str, after: datetime) -> datetime:
    """The first instant after `after` (aware) at which the expression, read in `timezone`, is due (UTC).

    The walk starts a clock change's width before the local time of `after`, because around a
    change the next instant may come from an earlier wall-clock time (the second pass of a
    repeated hour), and keeps the earliest instant found once past that width after it.
    """
    tz = zone(timezone)
    local = after.astimezone(tz).replace(tzinfo=None, fold=0)
    if _steady(tz, after):
        # Most of the year: the next wall-clock time is the answer, unless a clock change comes right at it.
        instant = _first(croniter(expression, local)).replace(tzinfo=tz).astimezone(UTC)
        if _steady(tz, instant):
            return instant
    folds = (0, 1) if expression.split()[1] == "*" else (0,)
    walk = croniter(expression, local - _CLOCK_CHANGE)
    best: datetime | None = None
    for _ in range(_MAX_STEPS):
        wall = _first(walk)
        if best is not None and wall > local + _CLOCK_CHANGE:
            return best
        for fold in folds:
            instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
            if instant > after and (best is None or instant < best):
                best = instant
    if best is None:
        raise CalendarError("The cron expression never matches a date.")
    return best


def _steady(tz: ZoneInfo, around: datetime) -> bool:
    """Whether the zone keeps one offset from a change's width before `around` to one after (most of the year)."""
    return (around - _CLOCK_CHANGE).astimezone(tz).utcoffset() == (around + _CLOCK_CHANGE).astimezone(tz).utcoffset()


def _first(walk: croniter) -> datetime:
    """The walk's next wall-clock time (naive: croniter never does daylight-saving arithmetic here)."""
    try:
        found: datetime = walk.get_next(datetime)
    except CroniterError:
        raise CalendarError("The cron expression never matches a date.") from None
    return found
