"""The Job state machine's one primitive, `transition`, and the transitions every caller shares.

Every transition runs in one transaction that locks the row, bumps `seq` and
sends one domain event after the commit (tasks.events; the gateway publishes it
to the owner's sockets). Transitions that find the job in a state that does not
allow them return None, so a redelivered or late task can never move a job
backwards. A child of a batch that changes state tells its batch in the same
transaction (tasks.events.child_moved; tasks.batches moves the counters).

    queued --start--> running --succeed/fail--> succeeded | failed
       |                 |
       +----cancel-------+------> cancelled          failed|cancelled --retry--> queued

tasks.services (the API of jobs) and tasks.batches (batches) are built on these.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from patches.prepared import Prepared, Writes
from tasks import artifacts, broker, events, kinds
from tasks.models import FINISHED, UNFINISHED, Batch, BatchMode, Job, JobEvent, JobStatus, empty_progress
from telemetry import metrics

# The name operators filter job state changes by (docs/operations.md), kept from before this module split out.
logger = logging.getLogger("tasks.services")


def enqueue(job_id: uuid.UUID) -> None:
    """Announce a queued job and hand it to Celery. Safe to call again (the reconciler does)."""
    job = transition(job_id, "job.queued", allowed=(JobStatus.QUEUED,))
    if job is not None and job.celery_task_id:
        send_task(job)


def born_queued(job: Job) -> Job:
    """Insert a new job already queued, in the caller's transaction: its `job.accepted` (seq 1) and
    `job.queued` (seq 2) events are written together, and `job.queued` is published on commit.

    One INSERT instead of an insert and then a queued transition (its own transaction, a locked read and
    a full-row update). The caller sends the task (send_task) once this commits.
    """
    job.status = JobStatus.QUEUED
    job.seq = QUEUED_SEQ
    _JOBS.create(job)
    _EVENTS.insert(
        _EVENT_FIELDS,
        [
            (job.pk, ACCEPTED_SEQ, "job.accepted", job.created_at, ""),
            (job.pk, QUEUED_SEQ, "job.queued", job.created_at, ""),
        ],
    )
    events.send_on_commit(events.job_changed, event="job.queued", job=job)
    log_on_commit("job.queued", job, logging.INFO, "")
    return job


# A new job's first two events: `job.accepted` answers its submit as of seq 1, `job.queued` follows.
ACCEPTED_SEQ = 1
QUEUED_SEQ = 2


def cancel(job_id: uuid.UUID | str, note: str) -> Job | None:
    def change(job: Job) -> None:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
        job.hold = ""

    return transition(job_id, "job.cancelled", allowed=UNFINISHED, change=change, note=note)


def retry(job_id: uuid.UUID | str, note: str, resend_unknown: bool = False) -> Job | None:
    """Queue a failed or cancelled job as a new attempt. Parts whose outcome is unknown (an email's
    interrupted recipients) are redone only with `resend_unknown`, which its owner chose (tasks.kinds.Unknowns)."""

    def change(job: Job) -> None:
        if resend_unknown:
            kinds.release_unknown(job.kind, job.pk)
        job.unknown_outcome = None  # counted again when this attempt ends
        job.status = JobStatus.QUEUED
        job.attempt += 1
        # A step of a sequence whose earlier steps have not all succeeded waits for its turn, with no task.
        job.celery_task_id = "" if _step_must_wait(job) else new_task_id()
        job.progress = empty_progress()
        job.result = job.error = job.started_at = job.finished_at = job.heartbeat_at = None
        job.deliveries = 0
        job.worker = ""
        job.hold = ""
        artifacts.forget(job)  # the new attempt makes its own

    job = transition(job_id, "job.queued", allowed=(JobStatus.FAILED, JobStatus.CANCELLED), change=change, note=note)
    if job is not None and job.celery_task_id:
        retried = job
        transaction.on_commit(lambda: send_task(retried), robust=True)
    return job


def retry_note(note: str, kind: str, resend_unknown: bool) -> str:
    """A retry's note in the job's timeline, saying when its owner chose to redo parts of unknown outcome."""
    return f"{note}, resending unknown outcomes" if resend_unknown and kinds.leaves_unknowns(kind) else note


def send_again(
    job_id: uuid.UUID | str,
    *,
    allowed: Collection[str],
    guard: Callable[[Job], bool],
    note: str,
    change: Callable[[Job], None] | None = None,
    level: int = logging.WARNING,
) -> Job | None:
    """Queue a job under a new task id (after `change`) and send that task once this commits; an old
    message of the job, if the broker ever hands it out, finds another task id and runs nothing."""

    def anew(job: Job) -> None:
        job.status = JobStatus.QUEUED
        job.celery_task_id = new_task_id()
        if change is not None:
            change(job)

    job = transition(job_id, "job.queued", allowed=allowed, change=anew, guard=guard, level=level, note=note)
    if job is not None:
        queued = job
        transaction.on_commit(lambda: send_task(queued), robust=True)
    return job


def revoke_on_commit(task_ids: list[str]) -> None:
    transaction.on_commit(lambda: current_app.control.revoke(task_ids), robust=True)


def transition(
    job_id: uuid.UUID | str,
    event: str,
    *,
    allowed: Collection[str],
    change: Callable[[Job], None] | None = None,
    guard: Callable[[Job], bool] | None = None,
    level: int = logging.INFO,
    note: str = "",
    then: Callable[[Job], None] | None = None,
) -> Job | None:
    """Apply `change` to a job in one of the `allowed` states, bump its seq, publish `event` and log one line;
    `then(job)`, if given, runs last in the same transaction.

    `note` (why it happened) goes with the event into the job's timeline (a failure's is its error
    code) and into the log line; `level` is the log line's.
    """
    with transaction.atomic():
        job = _LOCKED.first(job_id=job_id)
        if job is None or job.status not in allowed or (guard is not None and not guard(job)):
            return None
        before, values = job.status, _values(job)
        if change is not None:
            change(job)
        if job.is_finished and before not in FINISHED:
            # Counted when it finishes, as no run should be working any more; a running job cancelled mid-send
            # counts the part in flight (the email whose answer may still come: if it does, it is not resent).
            job.unknown_outcome = kinds.count_unknown(job.kind, job.pk)
        job.seq += 1
        _JOBS.update(job, _changed(job, values))
        if job.parent_id is not None and job.status != before:
            events.child_moved.send(sender=None, job=job, old=before)
        if before == JobStatus.RUNNING and job.status != before:
            events.send_on_commit(events.slot_freed, kind=job.kind, owner_id=job.owner_id)
        failure = str(job.error.get("code", "")) if job.status == JobStatus.FAILED and job.error else ""
        _EVENTS.insert(_EVENT_FIELDS, [(job.pk, job.seq, event, job.updated_at, (note or failure)[:200])])
        events.send_on_commit(events.job_changed, event=event, job=job)
        if job.is_finished:
            # Counted when the outermost transaction commits, so a rolled-back final state never is.
            transaction.on_commit(lambda: metrics.job_changed(job), robust=True)
        log_on_commit(event, job, level, note)
        if then is not None:
            then(job)
    return job


# Every transition's read: compiled once (patches.prepared), as the ORM's compile was a good part of a worker's
# CPU per job. search_text (the history's, often the longest column) is never needed here.
_LOCKED = Prepared(
    lambda job_id: Job.objects.select_for_update().defer("search_text").filter(pk=job_id)[:1],
    job_id=Job._meta.pk,
)


# Every transition's writes, their SQL built once (patches.prepared.Writes): no receiver listens to either model's
# save signals, which these do not send.
_JOBS = Writes(Job)
_EVENTS = Writes(JobEvent)
_EVENT_FIELDS = ("job", "seq", "event", "at", "note")


# The columns a transition may write (not the primary key, not the deferred search_text).
_COLUMNS = tuple(f.attname for f in Job._meta.concrete_fields if f.attname not in ("id", "search_text"))


def _values(job: Job) -> dict[str, Any]:
    return {name: job.__dict__[name] for name in _COLUMNS}


def _changed(job: Job, values: dict[str, Any]) -> list[str]:
    """The columns a change assigned, and seq and updated_at: the UPDATE writes only those.

    A JSON value counts as changed when a new object was assigned (a change assigns, never edits a
    value in place); other values when they differ.
    """
    changed = ["seq", "updated_at"]
    for name, old in values.items():
        new = job.__dict__[name]
        if name not in changed and (new is not old if isinstance(old, (dict, list)) else new != old):
            changed.append(name)
    return changed


def log_on_commit(event: str, job: Job, level: int, note: str) -> None:
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


def finish(
    job_id: uuid.UUID | str,
    event: str,
    *,
    allowed: Collection[str],
    change: Callable[[Job], None],
    guard: Callable[[Job], bool] | None = None,
    level: int = logging.INFO,
) -> Job | None:
    """A transition to a final state; what job_finished's receivers write (a notification) commits with it."""

    def finished(job: Job) -> None:
        events.job_finished.send(sender=None, job=job)

    return transition(job_id, event, allowed=allowed, change=change, guard=guard, level=level, then=finished)


def send_task(job: Job) -> None:
    kind = kinds.get(job.kind)
    try:
        current_app.send_task(
            kind.task_name,
            args=[str(job.pk)],
            task_id=job.celery_task_id,
            queue=kind.queue,
            priority=broker.priority_of(job.priority),
        )
    except Exception:
        # The job stays queued in the database, which is the source of truth;
        # it is sent again when the broker is back.
        logger.exception("job %s: could not hand the task to the broker", job.pk)


def new_task_id() -> str:
    return str(uuid.uuid4())


def _step_must_wait(job: Job) -> bool:
    if job.parent_id is None or not Batch.objects.filter(pk=job.parent_id, mode=BatchMode.SEQUENCE).exists():
        return False
    earlier = Job.objects.filter(parent_id=job.parent_id, position__lt=job.position)
    return earlier.exclude(status=JobStatus.SUCCEEDED).exists()
