"""Celery beat's scheduler, which also fires the users' schedules (schedules.scheduler).

Beat's own periodic tasks (the reconciler, housekeeping) go on as in Celery's
PersistentScheduler; between them, every JOBS_SCHEDULER_TICK_SECONDS, the due
schedules are fired from this process. A database that is away (a restart, a
failover) costs the ticks it is away: the next one reconnects and fires what
came due meanwhile, once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import close_old_connections

from schedules import scheduler

logger = logging.getLogger(__name__)


class Scheduler(PersistentScheduler):
    _fired_at = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        wait: float = super().tick(*args, **kwargs)
        tick = settings.JOBS_SCHEDULER_TICK_SECONDS
        now = time.monotonic()
        if now - self._fired_at >= tick:
            self._fired_at = now
            self._fire()
        return min(wait, max(0.0, self._fired_at + tick - time.monotonic()))

    def _fire(self) -> None:
        close_old_connections()  # a connection broken by a database restart is dropped, and made anew
        try:
            fired = scheduler.run_due()
        except Exception:
            logger.exception(
                "could not fire the due schedules; trying again in %s s", settings.JOBS_SCHEDULER_TICK_SECONDS
            )
            close_old_connections()
            return
        if fired:
            logger.info("fired %s due schedule(s)", fired)
