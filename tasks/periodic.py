"""Periodic Celery tasks, run on the CELERY_BEAT_SCHEDULE by `celery beat`: every one is here.

Listed in CELERY_IMPORTS (core/settings/base.py), so every worker knows them.
"""

from __future__ import annotations

import dataclasses
import logging

from celery import shared_task
from django.utils import timezone

from tasks import reconciler
from tasks.housekeeping import purge_finished_jobs

logger = logging.getLogger(__name__)


@shared_task(name="jobs.reconcile", soft_time_limit=120, time_limit=150, ignore_result=True)
def reconcile() -> None:
    """Requeue jobs whose worker is gone, resend tasks the broker lost (every JOBS_RECONCILE_SECONDS)."""
    outcome = reconciler.reconcile()
    if any(dataclasses.astuple(outcome)):
        logger.warning("reconciled: %s", outcome)


# One run deletes in batches; an hour is far beyond any backlog measured, and the
# next day's run goes on where a cut-off run stopped. Acknowledged when it starts: an
# hour is past both brokers' redelivery timeouts (BROKER_ACK_TIMEOUT_SECONDS), and a run
# lost with its worker is made up for by the next day's.
@shared_task(name="jobs.housekeeping", soft_time_limit=3600, time_limit=3660, acks_late=False)
def housekeeping() -> dict[str, int]:
    """Delete finished jobs and uploads past JOBS_RETENTION_DAYS (daily)."""
    return dataclasses.asdict(purge_finished_jobs(timezone.now()))
