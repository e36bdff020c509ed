"""A running job's log (Context.log): lines buffered, written in batches, the last ones kept.

1. `write` appends a line to a buffer under a lock: cheap in a hot loop. The
   buffer holds at most MAX_LINES lines; older ones still count (they take a
   number, `n`) but are dropped before they are written.
2. The buffer is written at most once per JOBS_PROGRESS_INTERVAL, from the
   process-wide timer (tasks.timer), and once more by `close`, which the runner
   calls before the job's final transition, so the final event comes after its
   last lines.
3. A write locks the job's row, numbers the lines on from its `log_count`,
   inserts them, and trims the log to its last MAX_LINES lines and MAX_BYTES of
   text; `log_count` minus the lines kept is what the protocol calls logs_dropped.
4. After the commit, the job_logged event carries the new lines (tasks.events).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from tasks import events
from tasks.kinds.base import LogLevel
from tasks.models import Job, JobLogLine
from tasks.timer import flush_timer

MAX_LINES = 1000
MAX_BYTES = 256 * 1024
MAX_LINE_CHARS = 4000  # a longer line is cut: one line may not crowd out the rest of the log
LEVELS = ("info", "warning", "error")


@dataclass(frozen=True)
class Line:
    at: datetime
    level: str
    text: str


def payload(line: JobLogLine) -> dict[str, Any]:
    """The protocol's LogLine object."""
    at = line.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"n": line.n, "at": at, "level": line.level, "text": line.text}


class LogBuffer:
    def __init__(self, job_id: str, interval: float) -> None:
        self.job_id = job_id
        self.interval = interval
        self._lock = threading.Lock()  # the buffer
        self._writing = threading.Lock()  # one write at a time: the timer's and close()'s
        self._pending: list[Line] = []
        self._skipped = 0  # lines dropped from a full buffer before they were written
        self._scheduled = False

    def write(self, level: LogLevel, text: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"A log level is one of {', '.join(LEVELS)}, not {level!r}.")
        line = Line(timezone.now(), level, text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…")
        with self._lock:
            self._pending.append(line)
            if len(self._pending) > MAX_LINES:
                del self._pending[0]
                self._skipped += 1
            if not self._scheduled:
                self._scheduled = True
                flush_timer.call_at(time.monotonic() + self.interval, self.flush)

    def flush(self) -> None:
        """Write what is buffered (on the timer thread, or from close)."""
        with self._writing:
            with self._lock:
                lines, skipped = self._pending, self._skipped
                self._pending, self._skipped, self._scheduled = [], 0, False
            if lines or skipped:
                store(self.job_id, lines, skipped)

    def close(self) -> None:
        self.flush()


def store(job_id: str, lines: list[Line], skipped: int = 0) -> None:
    """Append lines to a job's log (after `skipped` numbers that were dropped unwritten), then trim it."""
    with transaction.atomic():
        job = Job.objects.select_for_update().only("id", "owner_id", "log_count").filter(pk=job_id).first()
        if job is None:
            return
        first = job.log_count + skipped + 1
        rows = [
            JobLogLine(job_id=job.pk, n=first + i, at=line.at, level=line.level, text=line.text, size=_size(line))
            for i, line in enumerate(lines)
        ]
        JobLogLine.objects.bulk_create(rows)
        job.log_count = first + len(rows) - 1
        job.save(update_fields=["log_count"])
        _trim(job.pk)
        fields = {"owner_id": job.owner_id, "job_id": str(job.pk), "lines": [payload(row) for row in rows]}
        events.send_on_commit(events.job_logged, **fields)


def _size(line: Line) -> int:
    return len(line.text.encode())


def _trim(job_id: Any) -> None:
    """Keep the newest lines within MAX_LINES and MAX_BYTES; delete the rest."""
    total = 0
    cutoff = None
    newest_first = JobLogLine.objects.filter(job_id=job_id).order_by("-n").values_list("n", "size")
    for kept, (n, size) in enumerate(newest_first):
        if kept == MAX_LINES or total + size > MAX_BYTES:
            cutoff = n
            break
        total += size
    if cutoff is not None:
        JobLogLine.objects.filter(job_id=job_id, n__lte=cutoff).delete()


def tail(job: Job, count: int = 200) -> tuple[list[JobLogLine], int]:
    """The job's last `count` lines, oldest first, and how many older lines are no longer kept."""
    newest = list(JobLogLine.objects.filter(job=job).order_by("-n")[:count])
    kept = JobLogLine.objects.filter(job=job).count() if len(newest) == count else len(newest)
    return newest[::-1], job.log_count - kept
