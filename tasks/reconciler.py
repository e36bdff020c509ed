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

Each repair stands alone: one that fails is logged and tried again next pass. On PostgreSQL a repair
waits at most JOBS_RECONCILE_LOCK_WAIT_SECONDS for a row lock: a worker frozen inside one of its
transactions (SIGSTOP, a paused VM) keeps its job's row locked until the server ends its session
(DATABASE_IDLE_IN_TRANSACTION_SECONDS), and must not hold up the rest of the pass meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection
from django.utils import timezone

from tasks import batches, broker, kinds, limits, liveness, services
from tasks.models import BATCH_KIND, Job, JobStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Reconciled:
    requeued_lost: int
    resent: int
    resent_orphaned: int = 0
    batches_repaired: int = 0
    released: int = 0


def reconcile() -> Reconciled:
    with _lock_waits_bounded():
        lost = _step(_requeue_lost_jobs, 0)
        resent, orphaned = _step(_resend_missing_tasks, (0, 0))
        repaired = _step(batches.repair, 0)
        return Reconciled(lost, resent, orphaned, repaired, released=_step(limits.release_all, 0))


@contextmanager
def _lock_waits_bounded() -> Iterator[None]:
    """On PostgreSQL, a lock waited for longer than JOBS_RECONCILE_LOCK_WAIT_SECONDS fails the statement."""
    if connection.vendor != "postgresql":
        yield  # SQLite locks the whole file for its bounded `timeout`, never one row
        return
    wait = f"{round(settings.JOBS_RECONCILE_LOCK_WAIT_SECONDS * 1000)}ms"
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [wait])
    try:
        yield
    finally:
        _reset_lock_timeout()


def _reset_lock_timeout() -> None:
    # The worker process's connection outlives this task: other tasks must wait for locks as long as they need.
    try:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    except DatabaseError:
        connection.close()  # a broken connection: its next user opens a new session, with the defaults


def _step(repair: Callable[[], T], nothing: T) -> T:
    """One step of the pass; one that fails must not stop the others."""
    try:
        return repair()
    except Exception:
        logger.exception("the reconciler's step %s failed; it runs again next pass", repair.__name__)
        return nothing


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
        except Exception as exc:
            if _lock_wait_over(exc):
                logger.warning("job %s: its row stayed locked (a frozen worker?); the next pass tries again", job.pk)
            else:
                logger.exception("job %s: the reconciler could not repair it", job.pk)
    return repaired


def _lock_wait_over(exc: BaseException) -> bool:
    """PostgreSQL's lock_not_available: a lock_timeout ran out."""
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == "55P03"
