"""Is the process running a job still alive? Jobs record who runs them and beat while they do.

Celery's Redis transport redelivers a task whose worker died (at once when a
pool process dies, acks_late + reject_on_worker_lost; after the visibility
timeout when the whole worker dies), and it never says how often. So a job
records the process that claimed it ("host:pid") and a heartbeat; a claim of
a running job, by a redelivered task or by the reconciler, is allowed only
when that process is gone:

* on the same host, when the pid no longer exists (immediate);
* from another host, when the heartbeat is older than JOBS_LEASE_SECONDS.

The host is JOBS_WORKER_HOST (the machine's hostname unless set).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from tasks.models import Job, JobStatus
from tasks.timer import flush_timer

logger = logging.getLogger(__name__)


def this_worker() -> str:
    return f"{settings.JOBS_WORKER_HOST}:{os.getpid()}"


def is_gone(worker: str, heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether the process recorded as running a job can no longer be running it."""
    host, _, pid_text = worker.rpartition(":")
    if host == settings.JOBS_WORKER_HOST and pid_text.isdigit():
        return _pid_is_gone(int(pid_text))
    if heartbeat_at is None:
        return True
    now = now or timezone.now()
    return now - heartbeat_at > timedelta(seconds=settings.JOBS_LEASE_SECONDS)


def _pid_is_gone(pid: int) -> bool:
    if pid == os.getpid():
        # This process runs one task at a time: if it is claiming the job
        # again, the earlier run in it has ended.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still has a pid: it is gone all the same."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class Heartbeat:
    """Refreshes a running job's heartbeat every JOBS_HEARTBEAT_SECONDS until stopped."""

    def __init__(self, job_id: str, worker: str) -> None:
        self.job_id = job_id
        self.worker = worker
        self.interval = settings.JOBS_HEARTBEAT_SECONDS
        self._stopped = False

    def start(self) -> None:
        flush_timer.call_at(time.monotonic() + self.interval, self._beat)

    def stop(self) -> None:
        self._stopped = True

    def _beat(self) -> None:
        if self._stopped:
            return
        Job.objects.filter(pk=self.job_id, status=JobStatus.RUNNING, worker=self.worker).update(
            heartbeat_at=timezone.now()
        )
        self.start()
