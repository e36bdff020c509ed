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

import logging
import threading
import time
from typing import Any

from tasks import services
from tasks.errors import JobCancelled
from tasks.timer import flush_timer

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
            self._flush_when_due()
            if self.cancelled:
                raise JobCancelled()
        elif not self._timer_armed:
            self._arm_timer()

    def _flush_when_due(self) -> None:
        """Store and publish the pending report, if the interval since the last one is over.

        Checked again under the lock: the job's thread and the flush timer may
        both find a flush due, and only the first may send; the other leaves
        the report pending for the next interval.
        """
        with self._lock:
            if self._pending is None:
                return
            if time.monotonic() < self._next_at:
                if not self._timer_armed:
                    self._arm_timer()
                return
            values, self._pending = self._pending, None
            self._last = values
            self._next_at = time.monotonic() + self._interval
            self.flushes += 1
            if not services.save_progress(self._job_id, build_progress(*values)):
                self.cancelled = True

    def _arm_timer(self) -> None:
        self._timer_armed = True
        flush_timer.call_at(self._next_at, self._flush_from_timer)

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
            self._flush_when_due()
