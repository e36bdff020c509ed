"""Progress reporting for running jobs, coalesced.

A job may call `report` a million times; the reporter stores and publishes
at most one report per JOBS_PROGRESS_INTERVAL (0.1 s by default):

1. The first report goes out at once (leading edge); in a job's run, the `job.started`
   frame opens the first interval (`after_frame`), so a job shorter than the interval
   sends no progress frame of its own and costs no write for it: its final event carries
   the progress.
2. Reports inside the interval only replace the pending values: one tuple
   assignment and one flag test, no clock read, so a hot loop stays hot
   (docs/benchmarks.md, coalescing).
3. The pending report goes out when the interval ends, from the process-wide
   flush timer (trailing edge), whether the job is busy or quiet (a slow SMTP
   server, a long sleep). If nothing was reported in the interval, the next
   report goes out at once again.
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
from tasks.models import build_progress
from tasks.timer import flush_timer

logger = logging.getLogger(__name__)

_Values = tuple[int, int | None, str | None, str | None]


class ProgressReporter:
    def __init__(self, job_id: str, interval: float, after_frame: bool = False) -> None:
        self._job_id = job_id
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: _Values | None = None
        self._last: _Values | None = None
        # True when `report` must do more than store: a flush is due now (no
        # flush in the last interval) or the job was found cancelled. Set and
        # cleared under the lock; read without it on the hot path.
        self._hot = True
        self._closed = False
        self.cancelled = False
        self.flushes = 0
        if after_frame and interval > 0:
            # A frame of the job (job.started) has just gone out: this interval is already open.
            self._hot = False
            flush_timer.call_at(time.monotonic() + interval, self._interval_over)

    def report(
        self, current: int, total: int | None = None, *, stage: str | None = None, message: str | None = None
    ) -> None:
        self._pending = (current, total, stage, message)
        if self._hot:
            self._flush_now()

    def _flush_now(self) -> None:
        """Leading edge: nothing went out in the last interval, so this report goes at once."""
        with self._lock:
            if not self.cancelled and self._pending is not None and self._hot:
                self._flush()
        if self.cancelled:
            raise JobCancelled()

    def _flush(self) -> None:
        """Store and publish the pending report; the next may go out one interval later. Under the lock."""
        assert self._pending is not None
        values, self._pending = self._pending, None
        self._last = values
        self.flushes += 1
        if not services.save_progress(self._job_id, build_progress(*values)):
            self.cancelled = self._hot = True
            return
        if self._interval > 0:
            self._hot = False
            flush_timer.call_at(time.monotonic() + self._interval, self._interval_over)

    def _interval_over(self) -> None:
        """Trailing edge, on the timer thread: send what was reported meanwhile, or go back to leading."""
        with self._lock:
            if self._closed or self.cancelled:
                return
            # Back to the leading edge first, then send whatever was reported in the
            # interval (also a report that stored its values but read _hot before this).
            self._hot = True
            if self._pending is not None:
                self._flush()

    def close(self) -> dict[str, Any] | None:
        """Stop the trailing flush; the last reported progress, for the final transition."""
        with self._lock:
            self._closed = True
            values = self._pending or self._last
            self._pending = None
        return build_progress(*values) if values is not None else None
