"""Firing due schedules: each due time submits exactly one job, as the schedule's owner.

Called every JOBS_SCHEDULER_TICK_SECONDS by Celery beat (schedules.beat). A due
time is claimed by one conditional UPDATE (its next_run_at must still be that
due time), in the same transaction as the job it submits, whose request_id
`schedule:<id>:<due time>` is unique per owner. So two schedulers at once (a
second beat by mistake) make one job, a scheduler that dies mid-way leaves
nothing half done, and the next tick (of either) takes up what is left. Due
times missed while no scheduler ran collapse into one run: the next due time
is the first one after now.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from schedules import services
from schedules.models import Schedule
from tasks import services as jobs
from tasks.errors import ServiceError
from tasks.models import Job

logger = logging.getLogger(__name__)

# Due schedules read per pass; the next tick takes the rest.
_PASS = 200


def run_due(now: datetime | None = None) -> int:
    """Fire every schedule due at `now`; how many due times this scheduler claimed."""
    now = now or timezone.now()
    due = Schedule.objects.filter(paused=False, next_run_at__lte=now).order_by("next_run_at")
    fired = 0
    for schedule_id, due_at in list(due.values_list("id", "next_run_at")[:_PASS]):
        assert due_at is not None  # the filter says so
        try:
            fired += fire(schedule_id, due_at, now)
        except Exception:
            # One schedule that cannot run must not hold back the others; its due time is still unclaimed.
            logger.exception("schedule %s: could not fire its due time %s", schedule_id, due_at)
    return fired


def fire(schedule_id: uuid.UUID, due_at: datetime, now: datetime) -> bool:
    """Claim one due time and submit its job, together; False if another scheduler claimed it first."""
    schedule = Schedule.objects.select_related("owner").filter(pk=schedule_id).first()
    if schedule is None:
        return False
    with transaction.atomic():
        claimed = Schedule.objects.filter(pk=schedule_id, next_run_at=due_at, paused=False).update(
            next_run_at=services.following(schedule, max(due_at, now)), last_run_at=due_at, updated_at=now
        )
        if not claimed:
            return False
        job, error = _submit(schedule, due_at)
        Schedule.objects.filter(pk=schedule_id).update(last_job=job, last_error=error)
        transaction.on_commit(lambda: _told(schedule_id), robust=True)
    return True


def request_id(schedule_id: uuid.UUID, due_at: datetime) -> str:
    """`schedule:<id>:<due time>`, the due time in ISO-8601's basic form (it fits the 64 characters)."""
    return f"schedule:{schedule_id}:{due_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _submit(schedule: Schedule, due_at: datetime) -> tuple[Job | None, str]:
    """The due time's job, or why there is none (the params no longer hold, the owner is over a limit)."""
    if not schedule.owner.is_active:
        return None, "The owner's account is inactive."
    try:
        job, _ = jobs.submit(schedule.owner, request_id(schedule.pk, due_at), schedule.kind, schedule.params)
    except ServiceError as exc:
        logger.warning("schedule %s: its due time %s made no job: %s", schedule.pk, due_at, exc.message)
        return None, exc.message[:500]
    return job, ""


def _told(schedule_id: uuid.UUID) -> None:
    """The owner's sockets see the schedule's new next and last runs."""
    schedule = Schedule.objects.select_related("last_job").filter(pk=schedule_id).first()
    if schedule is not None:
        services.tell(schedule)
