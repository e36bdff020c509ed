"""The API of jobs: submit, cancel, retry, bulk actions, and what a worker's task reports.

Every change of state goes through tasks.transitions (one transaction, one
event); batches, their counters and sequences are tasks.batches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from patches.prepared import Prepared
from tasks import artifacts, batches, events, history, kinds, limits, liveness, transitions
from tasks.errors import JobConflict, JobNotFound, RateLimited, ServiceError
from tasks.estimates import eta_seconds
from tasks.models import BATCH_KIND, FINISHED, UNFINISHED, Job, JobStatus, Priority
from telemetry import metrics

logger = logging.getLogger(__name__)

ACCEPTED_SEQ = transitions.ACCEPTED_SEQ  # the seq a new job is answered with (job.accepted)


def submit(
    owner: User,
    request_id: str,
    kind: str,
    params: dict[str, Any],
    priority: str = Priority.NORMAL,
    start_later: bool = False,
) -> tuple[Job, bool]:
    """Record a job and queue it. The same request_id again returns the same job, created=False.

    With `start_later`, the caller hands the job to Celery (`hand_off`) once it has answered, off the
    thread that holds the database; a process that dies first leaves it to the reconciler. A job its kind
    splits (an email to 50,000 addresses) becomes a batch; with `start_later`, the caller hands its jobs
    out (batches.start), as for submit_batch.
    """
    # No lookup of the request_id first: the insert's unique constraint answers a resend (below). Only a
    # refusal looks, so that a resend of a job already made gets that job, not the refusal.
    try:
        split = kinds.validate_split(kind, params, owner.pk)
    except ServiceError as refusal:
        return _existing_or_raise(owner, request_id, refusal)
    if len(split.parts) > 1:
        # Too large for one job (an email to 50,000 addresses): one batch, one bar, spread over every worker.
        children = [(kind, part) for part in split.parts]
        return _submit_batch(owner, request_id, split.title, "parallel", children, start_later, priority)
    (clean,) = split.parts
    job_id = uuid.uuid4()
    searched = history.search_text(job_id, request_id, kinds.public_params(kind, clean))
    try:
        with transaction.atomic():
            _check_active_cap(owner)  # a resend of a job already made is answered below, even at the cap
            job = transitions.born_queued(
                Job(
                    id=job_id,
                    owner=owner,
                    request_id=request_id,
                    kind=kind,
                    params=clean,
                    priority=priority,
                    celery_task_id=transitions.new_task_id(),
                    search_text=searched,
                )
            )
            if not start_later:
                transaction.on_commit(lambda: transitions.send_task(job), robust=True)
    except RateLimited as refusal:
        return _existing_or_raise(owner, request_id, refusal)
    except IntegrityError:
        # Two sockets of one user raced with the same request_id: the first one won.
        return Job.objects.get(owner=owner, request_id=request_id), False
    metrics.job_submitted(kind)
    return job, True


def submit_batch(
    owner: User,
    request_id: str,
    title: str,
    mode: str,
    jobs: list[tuple[str, dict[str, Any]]],
    start_later: bool = False,
    priority: str = Priority.NORMAL,
) -> tuple[Job, bool]:
    """Record a batch and its children in one transaction, then queue them (tasks.batches).

    Every child is checked first: one bad child refuses the whole batch, naming it, and nothing is made.
    The same request_id again returns the same batch, created=False. With `start_later`, the caller
    hands the children out (batches.start) once it has answered: 10,000 sends take a while, and a
    process that dies first leaves them to the reconciler.
    """
    existing = _existing(owner, request_id)
    if existing is not None:
        return existing, False
    clean = batches.validate_children(mode, jobs, owner.pk)
    children = [(kind, params) for (kind, _), params in zip(jobs, clean, strict=True)]
    return _submit_batch(owner, request_id, title, mode, children, start_later, priority)


def _submit_batch(
    owner: User,
    request_id: str,
    title: str,
    mode: str,
    children: list[tuple[str, dict[str, Any]]],
    start_later: bool = False,
    priority: str = Priority.NORMAL,
) -> tuple[Job, bool]:
    """Create a batch of children whose params are checked."""
    try:
        with transaction.atomic():
            _check_active_cap(owner)
            batch = batches.create(owner.pk, request_id, title, mode, children, priority)
            if not start_later:
                transaction.on_commit(lambda: batches.start(batch.pk), robust=True)
    except IntegrityError:
        return Job.objects.get(owner=owner, request_id=request_id), False
    metrics.job_submitted(BATCH_KIND)
    return batch, True


def _existing_or_raise(owner: User, request_id: str, refusal: ServiceError) -> tuple[Job, bool]:
    """The job this request_id already made, for a submit that was refused; else that refusal."""
    existing = _existing(owner, request_id)
    if existing is None:
        raise refusal
    return existing, False


def _existing(owner: User, request_id: str) -> Job | None:
    """The job this request_id already made, if any: a submit is idempotent per owner and request_id."""
    return Job.objects.filter(owner=owner, request_id=request_id).first()


def hand_off(job: Job) -> None:
    """Send the task of a job that `submit(..., start_later=True)` created."""
    transitions.send_task(job)


def enqueue(job_id: uuid.UUID) -> None:
    """Announce a queued job and hand it to Celery. Safe to call again (the reconciler does)."""
    transitions.enqueue(job_id)


def cancel(owner: User, job_id: str) -> Job:
    """Cancel a queued or running job (a batch: its unfinished children). A running job stops at its next
    progress report."""
    found = _get_owned(owner, job_id)
    job = _cancel_one(found.pk, found.kind, "by its owner")
    if job is None:
        raise JobConflict("The job has already finished.")
    return job


def retry(owner: User, job_id: str, resend_unknown: bool = False) -> Job:
    """Queue a failed or cancelled job again as a new attempt (a batch: its failed and cancelled children).

    A part whose outcome is unknown (an email recipient whose send was interrupted) is redone only with
    `resend_unknown`: its owner's explicit choice, since it may then happen twice. Other kinds ignore it.
    """
    found = _get_owned(owner, job_id)
    job = _retry_one(found.pk, found.kind, "retried", resend_unknown)
    if job is None:
        raise JobConflict("Only a failed or cancelled job can be retried.")
    return job


def _cancel_one(job_id: uuid.UUID, kind: str, note: str) -> Job | None:
    if kind == BATCH_KIND:
        return batches.cancel(job_id)
    job = transitions.cancel(job_id, note=note)
    if job is not None and job.celery_task_id:
        # Revoking spares a worker the claim attempt and shows the task as revoked in Flower.
        transitions.revoke_on_commit([job.celery_task_id])
    return job


def _retry_one(job_id: uuid.UUID, kind: str, note: str, resend_unknown: bool = False) -> Job | None:
    if kind == BATCH_KIND:
        return batches.retry(job_id, resend_unknown)
    note = transitions.retry_note(note, kind, resend_unknown)
    return transitions.retry(job_id, note=note, resend_unknown=resend_unknown)


def bulk(owner_id: int | None, action: str, wanted: history.Filter, dry_run: bool = False) -> tuple[int, int]:
    """Cancel (queued, running) or retry (failed, cancelled) every job that passes the filter:
    how many it matched, and how many it changed (or would change, with dry_run).

    `owner_id` None is everyone's jobs (staff). Each job changes in its own
    transition, so each sends its usual event; a batch acts on its children.
    """
    jobs = history.scoped(owner_id, wanted)
    eligible = jobs.filter(status__in=BULK_FROM[action])
    if dry_run:
        return jobs.count(), eligible.count()
    matched, changed = jobs.count(), 0
    note = "by a bulk cancel" if action == "cancel" else "retried in bulk"
    act = _cancel_one if action == "cancel" else _retry_one
    for job_id, kind in list(eligible.values_list("id", "kind").iterator()):
        if act(job_id, kind, note) is not None:
            changed += 1
    return matched, changed


BULK_FROM = {"cancel": UNFINISHED, "retry": (JobStatus.FAILED, JobStatus.CANCELLED)}


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

    def runnable(job: Job) -> bool:
        return claimable(job) and not _exhausted(job)

    job = _claim_within_limits(job_id, task_id, runnable, me)
    if job is None:
        # Only a claim refused can be a job whose process died on each of its deliveries: the usual claim
        # is one transaction, and this check a second one only then.
        _fail_if_worker_lost(job_id, guard=claimable)
    return job


def _claim_within_limits(job_id: str, task_id: str, runnable: Callable[[Job], bool], me: str) -> Job | None:
    if not limits.in_force():
        return _claim(job_id, runnable, me)
    with transaction.atomic():
        refused = limits.refusal(job_id, task_id)  # only a queued job is refused: a redelivered one is running
        if refused is not None:
            # Over a limit, or its kind paused: it waits, queued, without this task (which ends).
            limits.hold(job_id, task_id, refused)
            return None
        return _claim(job_id, runnable, me)


def _claim(job_id: str, claimable: Callable[[Job], bool], me: str) -> Job | None:
    def change(job: Job) -> None:
        now = timezone.now()
        if job.deliveries:
            artifacts.forget(job)  # a run that died may have left some: this one makes them again
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or now
        job.deliveries += 1
        job.worker = me
        job.heartbeat_at = now

    return transitions.transition(
        job_id, "job.started", allowed=(JobStatus.QUEUED, JobStatus.RUNNING), change=change, guard=claimable
    )


def requeue_lost(job_id: str) -> Job | None:
    """Put a running job whose process is gone back in the queue, as a new delivery (the reconciler).

    It gets a new task id, so the old message, if the broker ever hands it out
    again, finds nothing to run.
    """

    def lost(job: Job) -> bool:
        # A batch is run by its children, not by a process: it has none to lose.
        return job.kind != BATCH_KIND and liveness.is_gone(job.worker, job.heartbeat_at)

    if _fail_if_worker_lost(job_id, guard=lost):
        return None

    def forget_worker(job: Job) -> None:
        job.worker = ""
        job.heartbeat_at = None

    return transitions.send_again(
        job_id, allowed=(JobStatus.RUNNING,), guard=lost, change=forget_worker, note="its worker is gone"
    )


def resend_orphaned(job_id: uuid.UUID, task_id: str) -> Job | None:
    """Send a queued job again whose task a dead worker took (the reconciler), as a new task id."""

    def still_orphaned(job: Job) -> bool:
        return job.celery_task_id == task_id

    note = "the worker it was handed to is gone"
    return transitions.send_again(job_id, allowed=(JobStatus.QUEUED,), guard=still_orphaned, note=note)


def _fail_if_worker_lost(job_id: str, guard: Callable[[Job], bool]) -> bool:
    """Fail a running job whose process died on each of its JOBS_MAX_DELIVERIES deliveries."""

    def exhausted(job: Job) -> bool:
        return _exhausted(job) and guard(job)

    def change(job: Job) -> None:
        job.status = JobStatus.FAILED
        job.error = {
            "code": "worker_lost",
            "message": f"The job stopped its worker {job.deliveries} times, so it is not run again.",
        }
        job.finished_at = timezone.now()

    job = transitions.finish(
        job_id, "job.failed", allowed=(JobStatus.RUNNING,), change=change, guard=exhausted, level=logging.ERROR
    )
    return job is not None


def _exhausted(job: Job) -> bool:
    return job.status == JobStatus.RUNNING and job.deliveries >= settings.JOBS_MAX_DELIVERIES


def save_progress(job_id: str, progress: dict[str, Any]) -> bool:
    """Store and publish progress of a running job; False when the job is no longer running."""
    with transaction.atomic():
        fields = ("id", "owner_id", "status", "seq", "started_at")
        job = Job.objects.select_for_update().only(*fields, "parent_id").filter(pk=job_id).first()
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
            parent_id=str(job.parent_id) if job.parent_id else None,
        )
    return True


def succeed(job_id: str, result: dict[str, Any] | None, progress: dict[str, Any] | None) -> Job | None:
    def change(job: Job) -> None:
        job.status = JobStatus.SUCCEEDED
        job.result = result
        job.progress = progress or job.progress
        job.finished_at = timezone.now()

    return transitions.finish(job_id, "job.succeeded", allowed=(JobStatus.RUNNING,), change=change)


def fail(job_id: str, code: str, message: str, progress: dict[str, Any] | None = None) -> Job | None:
    """Mark a queued or running job failed with an error a user can act on."""

    def change(job: Job) -> None:
        job.status = JobStatus.FAILED
        job.error = {"code": code, "message": message}
        job.progress = progress or job.progress
        job.finished_at = timezone.now()

    return transitions.finish(job_id, "job.failed", allowed=(JobStatus.QUEUED, JobStatus.RUNNING), change=change)


def snapshot(owner: User, finished_limit: int) -> list[Job]:
    """Every unfinished job of the owner, then the most recent finished ones; newest first in each part."""
    finished = _SNAPSHOT_FINISHED.get(finished_limit)
    if finished is None:  # one per limit: the limit is part of the SQL
        finished = _SNAPSHOT_FINISHED.setdefault(finished_limit, _snapshot_query(FINISHED, finished_limit))
    unfinished = sorted(_SNAPSHOT_UNFINISHED.all(owner_id=owner.pk), key=_created_at, reverse=True)
    return unfinished + finished.all(owner_id=owner.pk)


def _created_at(job: Job) -> datetime:
    return job.created_at


def _snapshot_query(statuses: tuple[str, ...], limit: int | None) -> Prepared[Job, Job]:
    """Part of every socket's hello: compiled once (patches.prepared), as the ORM's compile was most of its cost."""

    def build(owner_id: int) -> QuerySet[Job]:
        # Both parts read ranges of the index on (owner, status, created_at): `status IN` the part's statuses,
        # never `NOT IN` the other's, and the unfinished jobs (few: JOBS_MAX_ACTIVE_PER_USER) in no order,
        # sorted by `snapshot`. With either, SQLite and PostgreSQL read every job the owner ever had, on
        # every connect (20-27 ms at 90,000 jobs, against 0.2-2 ms).
        jobs = Job.objects.filter(owner_id=owner_id, parent=None, status__in=statuses).select_related("batch_counts")
        return jobs.order_by() if limit is None else jobs.order_by("-created_at")[:limit]

    return Prepared(build, owner_id=Job._meta.get_field("owner"))


_SNAPSHOT_UNFINISHED = _snapshot_query(UNFINISHED, None)
_SNAPSHOT_FINISHED: dict[int, Prepared[Job, Job]] = {}


def _check_active_cap(owner: User) -> None:
    """Refuse a new job while the owner already has the most queued and running jobs allowed.

    Called inside the transaction that inserts the job, so that count and
    insert are one step for each owner: on PostgreSQL the owner's user row is
    locked first, so a concurrent submit of the same owner waits here until
    this one commits, then counts (READ COMMITTED) the job it added. On SQLite
    the select_for_update is a no-op, and IMMEDIATE transactions (settings)
    already serialise every writer from BEGIN.
    """
    if connection.features.has_select_for_update:  # SQLite has no row locks (and needs none: see above)
        _OWNER_LOCK.all(owner_id=owner.pk)
    cap = settings.JOBS_MAX_ACTIVE_PER_USER
    if (_ACTIVE_JOBS.first(owner_id=owner.pk) or 0) >= cap:
        raise RateLimited(f"You already have {cap} jobs queued or running; wait for some to finish.", retry_after=10)


# Both run in every submit's transaction: compiled once (patches.prepared). `count()` is no queryset, so the
# count is the one row of a GROUP BY owner_id (none: no active job). A batch counts as one job, whatever its size.
_OWNER_LOCK = Prepared(
    lambda owner_id: User.objects.select_for_update().filter(pk=owner_id).values_list("pk", flat=True)[:1],
    owner_id=User._meta.pk,
)
_ACTIVE_JOBS = Prepared(
    lambda owner_id: (
        Job.objects.filter(owner_id=owner_id, parent=None, status__in=UNFINISHED)
        .order_by()
        .values("owner_id")
        .annotate(active=Count("id"))
        .values_list("active", flat=True)
    ),
    owner_id=Job._meta.get_field("owner"),
)


def _get_owned(owner: User, job_id: str) -> Job:
    try:
        return Job.objects.get(pk=uuid.UUID(job_id), owner=owner)
    except (ValueError, Job.DoesNotExist):
        raise JobNotFound() from None
