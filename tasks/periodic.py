"""Periodic Celery tasks, run on the CELERY_BEAT_SCHEDULE by `celery beat`.

Listed in CELERY_IMPORTS (core/settings/base.py): autodiscovery only finds
`tasks.tasks`, and every worker must know this task to run it.
"""

from __future__ import annotations

import dataclasses

from celery import shared_task
from django.utils import timezone

from tasks.housekeeping import purge_finished_jobs


# One run deletes in batches; an hour is far beyond any backlog measured, and the
# next day's run goes on where a cut-off run stopped.
@shared_task(name="jobs.housekeeping", soft_time_limit=3600, time_limit=3660)
def housekeeping() -> dict[str, int]:
    return dataclasses.asdict(purge_finished_jobs(timezone.now()))
