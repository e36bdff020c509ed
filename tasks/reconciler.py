"""The periodic reconciler: the database says what should be running; make the broker agree.

Run by Celery beat every JOBS_RECONCILE_SECONDS (task jobs.reconcile):

1. A running job whose process is gone (tasks.liveness) goes back to the
   queue as a new delivery, or fails with worker_lost after
   JOBS_MAX_DELIVERIES; users see job.queued and then job.started again.
2. A job queued for longer than JOBS_REQUEUE_AFTER_SECONDS whose task is in
   no queue of the broker and not delivered either (Redis restarted empty,
   or the broker was down when it was submitted) is sent again. (A step of a
   sequence that waits for its turn has no task yet, and is left alone.)
   One whose task was delivered to a worker that died before starting it (the
   message sits in the broker's unacked set until the visibility timeout, 41
   minutes by default) and that no live worker holds is sent again too, under
   a new task id, so the old message, when it is handed out, finds nothing to run.
   RabbitMQ lists no task ids, it only counts each queue's messages: there a
   job's task is missing when its queue is empty and no live worker holds it
   (a job in a queue that never empties waits until it does). RabbitMQ itself
   puts the deliveries of a dead worker back in the queue as soon as its
   connection closes, so nothing is orphaned there.
3. Each unfinished batch's counters are compared with a recount of its
   children and repaired (and logged) if they disagree; a sequence whose next
   step was never handed out, or whose steps after a failed one were never
   cancelled, is moved on (tasks.batches).
4. Jobs held by a limit or a paused kind that could start now are handed out
   (tasks.limits), should the release when a slot freed have been lost.

All go through tasks.services, so every change bumps seq and is published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tasks import batches, broker, kinds, limits, liveness, services
from tasks.models import BATCH_KIND, Job, JobStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    requeued_lost: int
    resent: int
    resent_orphaned: int = 0
    batches_repaired: int = 0
    released: int = 0


def reconcile() -> Reconciled:
    lost = _requeue_lost_jobs()
    resent, orphaned = _resend_missing_tasks()
    repaired = batches.repair()
    return Reconciled(lost, resent, orphaned, repaired, released=limits.release_all())


def _requeue_lost_jobs() -> int:
    # A running batch has no process of its own (its children do): never "lost".
    running = Job.objects.filter(status=JobStatus.RUNNING).exclude(kind=BATCH_KIND).only("id", "worker", "heartbeat_at")
    lost = [job for job in running if liveness.is_gone(job.worker, job.heartbeat_at)]
    # requeue_lost checks again under the row lock, so a job that just beat is left alone.
    return _each(lost, lambda job: services.requeue_lost(str(job.pk)) is not None)


def _resend_missing_tasks() -> tuple[int, int]:
    """Send again the tasks of queued jobs that the broker lost, and of those a dead worker took with it."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOBS_REQUEUE_AFTER_SECONDS)
    queued = Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=cutoff).exclude(celery_task_id="")
    waiting = list(queued.only("id", "celery_task_id", "kind"))
    if not waiting:
        return 0, 0
    in_broker = broker.held()
    if in_broker is None:
        return 0, 0  # cannot tell; try again next time
    queue_of = {kind.name: kind.queue for kind in kinds.all_kinds()}
    missing = [job for job in waiting if not in_broker.may_hold(job.celery_task_id, queue_of.get(job.kind))]
    if missing and not in_broker.lists_ids:
        # RabbitMQ: a task delivered to a live worker is in no queue's count; only the workers know it.
        known = broker.known_to_workers([job.celery_task_id for job in missing])
        if known is None:
            return 0, 0
        missing = [job for job in missing if job.celery_task_id not in known]
    delivered = [job for job in waiting if job.celery_task_id in in_broker.delivered]
    return _each(missing, _send_again), _resend_orphaned(delivered)


def _resend_orphaned(delivered: list[Job]) -> int:
    """Queued jobs whose task was delivered to a worker that no longer holds it: it died before starting them."""
    if not delivered:
        return 0
    known = broker.known_to_workers([job.celery_task_id for job in delivered])
    if known is None:
        return 0
    orphaned = [job for job in delivered if job.celery_task_id not in known]
    return _each(orphaned, lambda job: services.resend_orphaned(job.pk, job.celery_task_id) is not None)


def _send_again(job: Job) -> bool:
    logger.warning("job %s: queued, but its task is not in the broker; sending it again", job.pk)
    services.enqueue(job.pk)
    return True


def _each(jobs: list[Job], repair: Callable[[Job], bool]) -> int:
    """Repair each job on its own: one that cannot be repaired must not stop the others' repair. How many were."""
    repaired = 0
    for job in jobs:
        try:
            repaired += repair(job)
        except Exception:
            logger.exception("job %s: the reconciler could not repair it", job.pk)
    return repaired
