"""tasks.timer: a failure around one timed callback, its own or the database's, does not end the timer
thread: later callbacks (heartbeats, trailing progress flushes) still run."""

from __future__ import annotations

import threading
import time

import pytest

from tasks import timer


def test_a_failing_connection_check_does_not_stop_later_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def flaky_close() -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("the database cannot be asked")

    monkeypatch.setattr(timer, "close_old_connections", flaky_close)
    flush_timer = timer.FlushTimer()
    ran = threading.Event()

    def failing() -> None:
        raise ValueError("a callback that fails")

    flush_timer.call_at(time.monotonic(), failing)
    flush_timer.call_at(time.monotonic(), ran.set)
    assert ran.wait(5)
