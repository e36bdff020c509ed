"""The periodic reconciler: the database says what should be running; make the broker agree.

Run by Celery beat every JOBS_RECONCILE_SECONDS (task jobs.reconcile):

1. A running job whose process is gone (tasks.liveness) goes back to the
   queue as a new delivery, or fails with worker_lost after
   JOBS_MAX_DELIVERIES; users see job.queued and then job.started again.
2. A job queued for longer than JOBS_REQUEUE_AFTER_SECONDS whose task is in
   no queue of the broker and not delivered either (Redis restarted empty,
   or the broker was down when it was submitted) is sent again. (A step of a
   sequence that waits for its turn has no task yet, and is left alone.)
3. Each unfinished batch's counters are compared with a recount of its
   children and repaired (and logged) if they disagree; a sequence whose next
   step was never handed out, or whose steps after a failed one were never
   cancelled, is moved on (tasks.batches).

Both go through tasks.services, so every change bumps seq and is published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tasks import batches, broker, liveness, services
from tasks.models import Job, JobStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    requeued_lost: int
    resent: int
    batches_repaired: int = 0


def reconcile() -> Reconciled:
    lost, resent = _requeue_lost_jobs(), _resend_missing_tasks()
    return Reconciled(requeued_lost=lost, resent=resent, batches_repaired=batches.repair())


def _requeue_lost_jobs() -> int:
    running = Job.objects.filter(status=JobStatus.RUNNING).only("id", "worker", "heartbeat_at")
    lost = [job for job in running if liveness.is_gone(job.worker, job.heartbeat_at)]
    # requeue_lost checks again under the row lock, so a job that just beat is left alone.
    return sum(1 for job in lost if services.requeue_lost(str(job.pk)) is not None)


def _resend_missing_tasks() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.JOBS_REQUEUE_AFTER_SECONDS)
    queued = Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=cutoff).exclude(celery_task_id="")
    waiting = list(queued.only("id", "celery_task_id"))
    if not waiting:
        return 0
    in_broker = broker.task_ids()
    if in_broker is None:
        return 0  # cannot tell; try again next time
    missing = [job for job in waiting if job.celery_task_id not in in_broker]
    for job in missing:
        logger.warning("job %s: queued, but its task is not in the broker; sending it again", job.pk)
        services.enqueue(job.pk)
    return len(missing)
