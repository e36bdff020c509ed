"""The Job state machine: the only code that changes a job's state.

Every transition runs in one transaction that locks the row, bumps `seq` and
sends one domain event after the commit (tasks.events; the gateway publishes it
to the owner's sockets). Transitions that find the job in a state that does not
allow them return None, so a redelivered or late task can never move a job
backwards.

    queued --start--> running --succeed/fail--> succeeded | failed
       |                 |
       +----cancel-------+------> cancelled          failed|cancelled --retry--> queued
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from tasks import artifacts, events, history, kinds, liveness
from tasks.errors import JobConflict, JobNotFound, RateLimited
from tasks.estimates import eta_seconds
from tasks.models import FINISHED, UNFINISHED, Job, JobEvent, JobStatus, empty_progress
from telemetry import metrics

logger = logging.getLogger(__name__)


def submit(owner: User, request_id: str, kind: str, params: dict[str, Any]) -> tuple[Job, bool]:
    """Record a job and queue it. The same request_id again returns the same job, created=False."""
    existing = Job.objects.filter(owner=owner, request_id=request_id).first()
    if existing is not None:
        return existing, False
    clean = kinds.validate(kind, params, owner.pk)
    job_id = uuid.uuid4()
    searched = history.search_text(job_id, request_id, kinds.public_params(kind, clean))
    try:
        with transaction.atomic():
            _check_active_cap(owner)
            job = Job.objects.create(
                id=job_id,
                owner=owner,
                request_id=request_id,
                kind=kind,
                params=clean,
                celery_task_id=_new_task_id(),
                search_text=searched,
            )
            JobEvent.objects.create(job=job, seq=job.seq, event="job.accepted", at=job.created_at)
            transaction.on_commit(lambda: enqueue(job.pk), robust=True)
    except IntegrityError:
        # Two sockets of one user raced with the same request_id: the first one won.
        return Job.objects.get(owner=owner, request_id=request_id), False
    metrics.job_submitted(kind)
    return job, True


def enqueue(job_id: uuid.UUID) -> None:
    """Announce a queued job and hand it to Celery. Safe to call again (the reconciler does)."""
    job = _transition(job_id, "job.queued", allowed=(JobStatus.QUEUED,))
    if job is not None:
        _send_task(job)


def cancel(owner: User, job_id: str) -> Job:
    """Cancel a queued or running job. A running job stops at its next progress report."""
    _get_owned(owner, job_id)
    job = _cancel(job_id, note="by its owner")
    if job is None:
        raise JobConflict("The job has already finished.")
    # Revoking spares a worker the claim attempt and shows the task as revoked in Flower.
    _revoke_on_commit([job.celery_task_id])
    return job


def retry(owner: User, job_id: str) -> Job:
    """Queue a failed or cancelled job again as a new attempt."""
    _get_owned(owner, job_id)
    job = _retry(job_id, note="retried")
    if job is None:
        raise JobConflict("Only a failed or cancelled job can be retried.")
    return job


def bulk(owner_id: int | None, action: str, wanted: history.Filter, dry_run: bool = False) -> tuple[int, int]:
    """Cancel (queued, running) or retry (failed, cancelled) every job that passes the filter:
    how many it matched, and how many it changed (or would change, with dry_run).

    `owner_id` None is everyone's jobs (staff). Each job changes in its own
    transition, so each sends its usual event; a cancel revokes all their tasks at once.
    """
    jobs = history.scoped(owner_id, wanted)
    eligible = jobs.filter(status__in=BULK_FROM[action])
    if dry_run:
        return jobs.count(), eligible.count()
    matched, changed, task_ids = jobs.count(), 0, []
    note = "by a bulk cancel" if action == "cancel" else "retried in bulk"
    for job_id in list(eligible.values_list("id", flat=True).iterator()):
        job = _cancel(job_id, note) if action == "cancel" else _retry(job_id, note)
        if job is not None:
            changed += 1
            task_ids.append(job.celery_task_id)
    if action == "cancel" and task_ids:
        _revoke_on_commit(task_ids)
    return matched, changed


BULK_FROM = {"cancel": UNFINISHED, "retry": (JobStatus.FAILED, JobStatus.CANCELLED)}


def _cancel(job_id: uuid.UUID | str, note: str) -> Job | None:
    def change(job: Job) -> None:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()

    return _transition(job_id, "job.cancelled", allowed=UNFINISHED, change=change, note=note)


def _retry(job_id: uuid.UUID | str, note: str) -> Job | None:
    def change(job: Job) -> None:
        job.status = JobStatus.QUEUED
        job.attempt += 1
        job.celery_task_id = _new_task_id()
        job.progress = empty_progress()
        job.result = job.error = job.started_at = job.finished_at = job.heartbeat_at = None
        job.deliveries = 0
        job.worker = ""
        artifacts.forget(job)  # the new attempt makes its own

    job = _transition(job_id, "job.queued", allowed=(JobStatus.FAILED, JobStatus.CANCELLED), change=change, note=note)
    if job is not None:
        retried = job
        transaction.on_commit(lambda: _send_task(retried), robust=True)
    return job


def _revoke_on_commit(task_ids: list[str]) -> None:
    transaction.on_commit(lambda: current_app.control.revoke(task_ids), robust=True)


def start(job_id: str, task_id: str) -> Job | None:
    """Claim a job for the task that is about to run it; None if that task may not run it.

    Only the task of the current attempt may claim: a late message from an
    earlier attempt finds another task id. A running job may be claimed again
    by the same task id only when the process that ran it is gone (its message
    was redelivered after the worker died; see tasks.liveness). Each claim
    counts as a delivery: a job whose process died JOBS_MAX_DELIVERIES times
    is failed with `worker_lost` instead of being run again.
    """
    me = liveness.this_worker()

    def claimable(job: Job) -> bool:
        return job.celery_task_id == task_id and (
            job.status == JobStatus.QUEUED or liveness.is_gone(job.worker, job.heartbeat_at)
        )

    if _fail_if_worker_lost(job_id, guard=claimable):
        return None

    def change(job: Job) -> None:
        now = timezone.now()
        if job.deliveries:
            artifacts.forget(job)  # a run that died may have left some: this one makes them again
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or now
        job.deliveries += 1
        job.worker = me
        job.heartbeat_at = now

    return _transition(
        job_id, "job.started", allowed=(JobStatus.QUEUED, JobStatus.RUNNING), change=change, guard=claimable
    )


def requeue_lost(job_id: str) -> Job | None:
    """Put a running job whose process is gone back in the queue, as a new delivery (the reconciler).

    It gets a new task id, so the old message, if the broker ever hands it out
    again, finds nothing to run.
    """

    def lost(job: Job) -> bool:
        return liveness.is_gone(job.worker, job.heartbeat_at)

    if _fail_if_worker_lost(job_id, guard=lost):
        return None

    def change(job: Job) -> None:
        job.status = JobStatus.QUEUED
        job.celery_task_id = _new_task_id()
        job.worker = ""
        job.heartbeat_at = None

    job = _transition(
        job_id,
        "job.queued",
        allowed=(JobStatus.RUNNING,),
        change=change,
        guard=lost,
        level=logging.WARNING,
        note="its worker is gone",
    )
    if job is not None:
        transaction.on_commit(lambda: _send_task(job), robust=True)
    return job


def _fail_if_worker_lost(job_id: str, guard: Callable[[Job], bool]) -> bool:
    """Fail a running job whose process died on each of its JOBS_MAX_DELIVERIES deliveries."""

    def exhausted(job: Job) -> bool:
        return job.status == JobStatus.RUNNING and job.deliveries >= settings.JOBS_MAX_DELIVERIES and guard(job)

    def change(job: Job) -> None:
        job.status = JobStatus.FAILED
        job.error = {
            "code": "worker_lost",
            "message": f"The job stopped its worker {job.deliveries} times, so it is not run again.",
        }
        job.finished_at = timezone.now()

    job = _finish(
        job_id, "job.failed", allowed=(JobStatus.RUNNING,), change=change, guard=exhausted, level=logging.ERROR
    )
    return job is not None


def save_progress(job_id: str, progress: dict[str, Any]) -> bool:
    """Store and publish progress of a running job; False when the job is no longer running."""
    with transaction.atomic():
        fields = ("id", "owner_id", "status", "seq", "started_at")
        job = Job.objects.select_for_update().only(*fields).filter(pk=job_id).first()
        if job is None or job.status != JobStatus.RUNNING:
            return False
        job.seq += 1
        job.progress = progress
        job.save(update_fields=["seq", "progress", "updated_at"])
        eta = eta_seconds(progress, job.started_at, job.updated_at)
        events.send_on_commit(
            events.job_progressed,
            owner_id=job.owner_id,
            job_id=str(job.pk),
            seq=job.seq,
            progress=progress,
            eta_seconds=eta,
        )
    return True


def succeed(job_id: str, result: dict[str, Any] | None, progress: dict[str, Any] | None) -> Job | None:
    def change(job: Job) -> None:
        job.status = JobStatus.SUCCEEDED
        job.result = result
        job.progress = progress or job.progress
        job.finished_at = timezone.now()

    return _finish(job_id, "job.succeeded", allowed=(JobStatus.RUNNING,), change=change)


def fail(job_id: str, code: str, message: str, progress: dict[str, Any] | None = None) -> Job | None:
    """Mark a queued or running job failed with an error a user can act on."""

    def change(job: Job) -> None:
        job.status = JobStatus.FAILED
        job.error = {"code": code, "message": message}
        job.progress = progress or job.progress
        job.finished_at = timezone.now()

    return _finish(job_id, "job.failed", allowed=(JobStatus.QUEUED, JobStatus.RUNNING), change=change)


def snapshot(owner: User, finished_limit: int) -> list[Job]:
    """Every unfinished job of the owner, then the most recent finished ones; newest first in each part."""
    jobs = Job.objects.filter(owner=owner).order_by("-created_at")
    unfinished = list(jobs.exclude(status__in=FINISHED))
    finished = list(jobs.filter(status__in=FINISHED)[:finished_limit])
    return unfinished + finished


def _transition(
    job_id: uuid.UUID | str,
    event: str,
    *,
    allowed: Collection[str],
    change: Callable[[Job], None] | None = None,
    guard: Callable[[Job], bool] | None = None,
    level: int = logging.INFO,
    note: str = "",
) -> Job | None:
    """Apply `change` to a job in one of the `allowed` states, bump its seq, publish `event` and log one line.

    `note` (why it happened) goes with the event into the job's timeline (a failure's is its error
    code) and into the log line; `level` is the log line's.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in allowed or (guard is not None and not guard(job)):
            return None
        if change is not None:
            change(job)
        job.seq += 1
        job.save()
        failure = str(job.error.get("code", "")) if job.status == JobStatus.FAILED and job.error else ""
        JobEvent.objects.create(job=job, seq=job.seq, event=event, at=job.updated_at, note=(note or failure)[:200])
        events.send_on_commit(events.job_changed, event=event, job=job)
        if job.is_finished:
            # Counted when the outermost transaction commits, so a rolled-back final state never is.
            transaction.on_commit(lambda: metrics.job_changed(job), robust=True)
        _log_on_commit(event, job, level, note)
    return job


def _log_on_commit(event: str, job: Job, level: int, note: str) -> None:
    """The one log line of a transition, written when it commits (a rolled-back change never happened).

    Its fields are taken now, as the job is in this transition.
    """
    fields: dict[str, Any] = {
        "event": event,
        "job_id": str(job.pk),
        "kind": job.kind,
        "user_id": job.owner_id,
        "status": str(job.status),
        "seq": job.seq,
        "attempt": job.attempt,
        "deliveries": job.deliveries,
    }
    if job.status == JobStatus.FAILED and job.error:
        fields["code"] = job.error.get("code")
    shown = ("kind", "user_id", "seq", "attempt", "deliveries", "code")
    details = " ".join(f"{key}={fields[key]}" for key in shown if key in fields) + (f" ({note})" if note else "")
    args = (fields["job_id"], fields["status"], details)
    transaction.on_commit(lambda: logger.log(level, "job %s %s: %s", *args, extra=fields), robust=True)


def _check_active_cap(owner: User) -> None:
    """Refuse a new job while the owner already has the most queued and running jobs allowed.

    Called inside the transaction that inserts the job, so that count and
    insert are one step for each owner: on PostgreSQL the owner's user row is
    locked first, so a concurrent submit of the same owner waits here until
    this one commits, then counts (READ COMMITTED) the job it added. On SQLite
    the select_for_update is a no-op, and IMMEDIATE transactions (settings)
    already serialise every writer from BEGIN.
    """
    User.objects.select_for_update().filter(pk=owner.pk).values_list("pk").first()
    cap = settings.JOBS_MAX_ACTIVE_PER_USER
    if Job.objects.filter(owner=owner, status__in=UNFINISHED).count() >= cap:
        raise RateLimited(f"You already have {cap} jobs queued or running; wait for some to finish.", retry_after=10)


def _finish(
    job_id: str,
    event: str,
    *,
    allowed: Collection[str],
    change: Callable[[Job], None],
    guard: Callable[[Job], bool] | None = None,
    level: int = logging.INFO,
) -> Job | None:
    """A transition to a final state; what job_finished's receivers write (a notification) commits with it."""
    with transaction.atomic():
        job = _transition(job_id, event, allowed=allowed, change=change, guard=guard, level=level)
        if job is not None:
            events.job_finished.send(sender=None, job=job)
    return job


def _get_owned(owner: User, job_id: str) -> Job:
    try:
        return Job.objects.get(pk=uuid.UUID(job_id), owner=owner)
    except (ValueError, Job.DoesNotExist):
        raise JobNotFound() from None


def _send_task(job: Job) -> None:
    kind = kinds.get(job.kind)
    try:
        current_app.send_task(kind.task_name, args=[str(job.pk)], task_id=job.celery_task_id, queue=kind.queue)
    except Exception:
        # The job stays queued in the database, which is the source of truth;
        # it is sent again when the broker is back.
        logger.exception("job %s: could not hand the task to the broker", job.pk)


def _new_task_id() -> str:
    return str(uuid.uuid4())
