"""Progress reporting for running jobs, coalesced.

A job may call `report` a million times; the reporter stores and publishes
at most one report per JOBS_PROGRESS_INTERVAL (0.1 s by default):

1. The first report goes out at once (leading edge).
2. Reports inside the interval only replace the pending values: one tuple
   assignment and one clock read, so a hot loop stays hot.
3. The pending report goes out when the interval ends, either from the next
   `report` call or, if the job goes quiet (a slow SMTP server, a long
   sleep), from the process-wide flush timer (trailing edge).
4. Every flush stores the progress durably with a new `seq` and publishes
   it after the commit. A flush that finds the job no longer running means
   it was cancelled: the next `report` raises JobCancelled.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections

from tasks import services
from tasks.errors import JobCancelled

logger = logging.getLogger(__name__)

_Values = tuple[int, int | None, str | None, str | None]


def build_progress(current: int, total: int | None, stage: str | None, message: str | None) -> dict[str, Any]:
    percent = round(min(current / total, 1.0) * 100, 1) if total else None
    return {"current": current, "total": total, "percent": percent, "stage": stage or "", "message": message or ""}


class ProgressReporter:
    def __init__(self, job_id: str, interval: float) -> None:
        self._job_id = job_id
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: _Values | None = None
        self._last: _Values | None = None
        self._next_at = 0.0
        self._timer_armed = False
        self._closed = False
        self.cancelled = False
        self.flushes = 0

    def report(
        self, current: int, total: int | None = None, *, stage: str | None = None, message: str | None = None
    ) -> None:
        if self.cancelled:
            raise JobCancelled()
        self._pending = (current, total, stage, message)
        if time.monotonic() >= self._next_at:
            self.flush()
            if self.cancelled:
                raise JobCancelled()
        elif not self._timer_armed:
            self._timer_armed = True
            flush_timer.call_at(self._next_at, self._flush_from_timer)

    def flush(self) -> None:
        """Store and publish the pending report now, if there is one."""
        with self._lock:
            values, self._pending = self._pending, None
            if values is None:
                return
            self._last = values
            self._next_at = time.monotonic() + self._interval
            self.flushes += 1
            if not services.save_progress(self._job_id, build_progress(*values)):
                self.cancelled = True

    def close(self) -> dict[str, Any] | None:
        """Stop the trailing flush; the last reported progress, for the final transition."""
        with self._lock:
            self._closed = True
            values = self._pending or self._last
            self._pending = None
        return build_progress(*values) if values is not None else None

    def _flush_from_timer(self) -> None:
        self._timer_armed = False
        if not self._closed:
            self.flush()


class FlushTimer:
    """One daemon thread per process that runs callbacks at monotonic deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = 0
        self._wakeup = threading.Condition()
        self._pid = 0

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        with self._wakeup:
            if self._pid != os.getpid():  # first use, or first use after a fork
                self._pid = os.getpid()
                self._heap.clear()
                threading.Thread(target=self._run, name="progress-flush", daemon=True).start()
            self._counter += 1
            heapq.heappush(self._heap, (when, self._counter, callback))
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            callback = self._next_due()
            close_old_connections()
            try:
                callback()
            except Exception:
                logger.exception("trailing progress flush failed")
            finally:
                close_old_connections()

    def _next_due(self) -> Callable[[], None]:
        with self._wakeup:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                self._wakeup.wait(self._heap[0][0] - now if self._heap else None)


flush_timer = FlushTimer()
