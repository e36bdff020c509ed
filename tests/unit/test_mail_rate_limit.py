"""The mail rate limit (EMAIL_RATE_PER_MINUTE, or EMAIL_RATE_LIMIT) on a real Redis: the window's budget
goes at once, the next message waits for the oldest to leave the window and says so (a cancel stops the
wait), none is no limit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from pytest_django.fixtures import Settings

from tasks import mailrate


class Cancelled(Exception):
    pass


@pytest.fixture(autouse=True)
def fresh_limiter() -> Iterator[None]:
    mailrate.forget()  # built from this test's settings (the unit tests' own Redis database)
    yield
    mailrate.forget()


def never_waits(left: float) -> None:
    raise AssertionError(f"waited {left} s")


def waits_of_a_cancelled_turn() -> list[float]:
    """Ask for a turn and cancel at the first wait; the waits reported (the time left, in seconds)."""
    waits: list[float] = []

    def cancel(left: float) -> None:
        waits.append(left)
        raise Cancelled

    with pytest.raises(Cancelled):
        mailrate.wait_for_turn(cancel)
    return waits


def test_the_budget_goes_at_once_then_the_next_waits_for_the_window(settings: Settings) -> None:
    settings.EMAIL_RATE_PER_MINUTE = 3
    for _ in range(3):
        mailrate.wait_for_turn(never_waits)
    started = time.monotonic()
    waits = waits_of_a_cancelled_turn()
    assert len(waits) == 1 and 58 < waits[0] <= 60
    assert time.monotonic() - started < 1  # told at once, not after sleeping


def test_a_rate_in_another_window_waits_for_that_window(settings: Settings) -> None:
    settings.EMAIL_RATE_LIMIT = "2/5 seconds"  # e.g. a provider that counts per second
    for _ in range(2):
        mailrate.wait_for_turn(never_waits)
    waits = waits_of_a_cancelled_turn()
    assert len(waits) == 1 and 3 < waits[0] <= 5


def test_no_limit_never_waits_or_asks_redis(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.EMAIL_RATE_PER_MINUTE = 0
    monkeypatch.setattr(mailrate, "_shared", never_asked)
    for _ in range(1000):
        mailrate.wait_for_turn(never_waits)


def test_an_unreachable_redis_lets_the_message_go(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.EMAIL_RATE_PER_MINUTE = 1
    nowhere = MovingWindowRateLimiter(RedisStorage("redis://127.0.0.1:1/0", wrap_exceptions=True))  # no one there
    monkeypatch.setattr(mailrate, "_shared", lambda: nowhere)
    mailrate.wait_for_turn(never_waits)
    mailrate.wait_for_turn(never_waits)


def never_asked() -> MovingWindowRateLimiter:
    raise AssertionError("Redis was asked")
