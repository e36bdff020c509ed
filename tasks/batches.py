"""Batches and sequences (protocol 1.1 Batches): one job made of many.

A batch is a Job of kind "batch" with a Batch row of counters; its children are
ordinary jobs of their own kinds with `parent` set, each run by its own Celery
task (Flower shows them under their kinds' names).

1. The counters move by one in each child's transition transaction
   (`child_moved`, a receiver of tasks.events.child_moved): one UPDATE of the
   Batch row, which also serialises the children of one batch, so the
   decision that follows (start the batch, finish it, reopen it) reads counts
   no other child can change before this one commits. Locks are always taken
   child, then Batch row, then batch Job: nothing here takes them in another
   order, so batches never deadlock with their children.
2. A sequence runs one child at a time: `advance` looks at its steps and
   hands out the first one that has not succeeded, or cancels the steps after
   a failed one. It runs after each child's commit and from the reconciler,
   and is idempotent, so a crash between the two loses nothing.
3. `{{ steps.N.result.PATH }}` in a later step's string params is replaced when
   the step starts (`substitute`); a path that does not resolve fails the step
   with invalid_params.
4. The batch's progress reaches the owner's sockets coalesced (`progress`): at
   most one job.progress per JOBS_BATCH_PROGRESS_INTERVAL per process,
   whatever the number of children, and the batch's state events carry the
   counts as they are in that transaction.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from patches.prepared import Prepared, Writes
from tasks import broker, bulk, events, history, kinds, transitions
from tasks.errors import InvalidParams, ServiceError
from tasks.models import (
    BATCH_KIND,
    COUNTED,
    FINISHED,
    UNFINISHED,
    Batch,
    BatchMode,
    Job,
    JobEvent,
    JobStatus,
    Priority,
    build_progress,
    empty_progress,
)
from tasks.timer import flush_timer

logger = logging.getLogger(__name__)

MAX_PARALLEL = 10_000
MAX_SEQUENCE = 20
STEP = re.compile(r"\{\{\s*steps\.(\d+)\.result((?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)


# --- submitting -----------------------------------------------------------------------------------


def validate_children(mode: str, jobs: Sequence[tuple[str, dict[str, Any]]], owner_id: int) -> list[dict[str, Any]]:
    """Each child's params, checked and normalised; one InvalidParams naming every bad child as jobs.<i>.<field>."""
    limit = MAX_SEQUENCE if mode == BatchMode.SEQUENCE else MAX_PARALLEL
    if not 1 <= len(jobs) <= limit:
        raise InvalidParams(f"A {mode} batch holds 1 to {limit} jobs.", {"jobs": f"Give 1 to {limit} jobs."})
    details: dict[str, str] = {}
    clean: list[dict[str, Any]] = []
    for index, (kind, params) in enumerate(jobs):
        try:
            clean.append(_child_params(mode, index, kind, params, owner_id))
        except ServiceError as exc:
            problems = exc.details or {"kind" if exc.code == "unknown_kind" else "params": exc.message}
            details.update({f"jobs.{index}.{field}": text for field, text in problems.items()})
        if len(details) >= 20:
            break  # enough to fix the first ones; a 10,000-child mistake need not be listed 10,000 times
    if details:
        raise InvalidParams("Some jobs of the batch are not valid; nothing was created.", details)
    return clean


def _child_params(mode: str, index: int, kind: str, params: dict[str, Any], owner_id: int) -> dict[str, Any]:
    templated = _templated_fields(params)
    if not templated:
        return _one_part(kind, params, owner_id)
    if mode != BatchMode.SEQUENCE:
        raise InvalidParams("Only a sequence's steps may refer to earlier steps.", dict.fromkeys(templated, _ONLY_SEQ))
    for field, text in templated.items():
        for match in TEMPLATE.finditer(text):
            step = STEP.fullmatch(match.group(0))
            if step is None or int(step.group(1)) >= index:
                raise InvalidParams("A step refers to a step that is not before it.", {field: _BAD_REF})
    # The templated fields get their values when the step starts, and are checked then;
    # every other field is checked now.
    try:
        kinds.validate(kind, params, owner_id)
    except InvalidParams as exc:
        left = {field: text for field, text in (exc.details or {}).items() if not _under(field, templated)}
        if left:
            raise InvalidParams(exc.message, left) from None
    return params


def _one_part(kind: str, params: dict[str, Any], owner_id: int) -> dict[str, Any]:
    split = kinds.validate_split(kind, params, owner_id)
    if len(split.parts) > 1:
        # A batch does not nest: what a kind would split (an email to 5,000 addresses) is submitted on its own.
        raise InvalidParams("Too large for one job of a batch.", {"params": "Too large for one job: submit it alone."})
    return split.parts[0]


_ONLY_SEQ = "{{ steps… }} refers to an earlier step, which only sequences have."
_BAD_REF = "Write {{ steps.N.result.PATH }}, with N the index of an earlier step."


def _templated_fields(value: Any, path: str = "") -> dict[str, str]:
    """The dotted paths of the string params that hold {{ … }}, and their text."""
    if isinstance(value, str):
        return {path or "params": value} if "{{" in value else {}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found: dict[str, str] = {}
    for key, item in items:
        found.update(_templated_fields(item, f"{path}.{key}" if path else str(key)))
    return found


def _under(field: str, templated: dict[str, str]) -> bool:
    return any(field == path or field.startswith(path + ".") or path.startswith(field + ".") for path in templated)


def create(
    owner_id: int,
    request_id: str,
    title: str,
    mode: str,
    children: list[tuple[str, dict[str, Any]]],
    priority: str = Priority.NORMAL,
) -> Job:
    """Insert the batch, its counters, its children and their first events (in the caller's transaction).
    The children have the batch's priority."""
    now = timezone.now()
    size = len(children)
    batch_id = uuid.uuid4()
    params = {"title": title, "mode": mode, "size": size}
    batch = Job.objects.create(
        id=batch_id,
        owner_id=owner_id,
        request_id=request_id,
        kind=BATCH_KIND,
        params=params,
        priority=priority,
        progress=build_progress(0, size, None, None),
        search_text=history.search_text(batch_id, request_id, {"title": title}),
    )
    JobEvent.objects.create(job=batch, seq=batch.seq, event="job.accepted", at=batch.created_at)
    batch.batch_counts = Batch.objects.create(job=batch, mode=mode, total=size, queued=size)
    parallel = mode == BatchMode.PARALLEL
    rows = [_child(batch, position, kind, params, parallel) for position, (kind, params) in enumerate(children)]
    bulk.insert(Job, rows)
    firsts = [{"job_id": row["id"], "seq": 1, "event": "job.accepted", "at": now} for row in rows]
    queued = [{"job_id": row["id"], "seq": 2, "event": "job.queued", "at": now} for row in rows if parallel]
    bulk.insert(JobEvent, firsts + queued)
    return batch


def _child(batch: Job, position: int, kind: str, params: dict[str, Any], parallel: bool) -> dict[str, Any]:
    child_id = uuid.uuid4()
    request_id = f"batch:{batch.pk}:{position}"
    return {
        "id": child_id,
        "owner_id": batch.owner_id,
        "parent_id": batch.pk,
        "position": position,
        "priority": batch.priority,
        "request_id": request_id,
        "kind": kind,
        "params": params,
        # A parallel child is sent at once; a step of a sequence waits, with no task, until its turn.
        "seq": 2 if parallel else 1,
        "celery_task_id": str(uuid.uuid4()) if parallel else "",
        "search_text": history.search_text(child_id, request_id, kinds.public_params(kind, params)),
        # Newest first is the children's order: each is a microsecond older than the one before it.
        "created_at": batch.created_at - timedelta(microseconds=position + 1),
        "progress": empty_progress(),
    }


def start(batch_id: uuid.UUID) -> None:
    """After the batch committed: announce it queued, then hand out its children."""
    transitions.enqueue(batch_id)  # the batch has no task of its own: this only announces it
    counts = Batch.objects.get(pk=batch_id)
    if counts.mode == BatchMode.SEQUENCE:
        advance(batch_id)
    else:
        send_children(batch_id)


def send_children(batch_id: uuid.UUID) -> int:
    """Send the task of every queued child of a parallel batch.

    The reconciler sends again the task of a job queued for JOBS_REQUEUE_AFTER_SECONDS that
    the broker lacks; 10,000 sends take seconds, so the children not sent yet are kept fresh
    (their updated_at) while this runs. If this process dies, they go stale and the reconciler
    sends them.
    """
    waiting = Job.objects.filter(parent_id=batch_id, status=JobStatus.QUEUED).exclude(celery_task_id="")
    fields = ("id", "kind", "celery_task_id", "priority", "position", "updated_at")
    children = list(waiting.order_by("position").values_list(*fields))  # read whole: the loop writes
    refresh_every = settings.JOBS_REQUEUE_AFTER_SECONDS / 2
    oldest = min((child[5] for child in children), default=timezone.now())
    fresh_until = time.monotonic() + refresh_every - (timezone.now() - oldest).total_seconds()
    sent = 0
    try:
        # Each send takes the same pooled broker connection (Celery's producer pool).
        for job_id, kind_name, task_id, priority, position, _ in children:
            if time.monotonic() >= fresh_until:
                waiting.filter(position__gte=position).update(updated_at=timezone.now())
                fresh_until = time.monotonic() + refresh_every
            kind = kinds.get(kind_name)
            order = broker.priority_of(priority)
            current_app.send_task(kind.task_name, args=[str(job_id)], task_id=task_id, queue=kind.queue, priority=order)
            sent += 1
    except Exception:
        # The children stay queued in the database; the reconciler sends what the broker lacks.
        logger.exception("batch %s: could not hand its children to the broker (%s sent)", batch_id, sent)
    return sent


# --- the counters, in each child's transition ------------------------------------------------------


# Every child's transition moves its batch's counters: both statements are built once per process (issue 19).
_COUNTERS = Writes(Batch)
_QUEUED_BATCH = Prepared(
    lambda batch_id: Job.objects.filter(pk=batch_id, status=JobStatus.QUEUED).values_list("pk", flat=True)[:1],
    batch_id=Job._meta.get_field("id"),
)


def child_moved(sender: Any, job: Job, old: str, **fields: Any) -> None:
    """A child changed state, in its transition's transaction: move the counters, then the batch."""
    assert job.parent_id is not None
    batch_id = job.parent_id
    counts = _COUNTERS.add(batch_id, {old: -1, job.status: +1})
    if job.status == JobStatus.QUEUED and old in FINISHED:
        _reopen(batch_id, counts)
    elif job.status == JobStatus.RUNNING and _QUEUED_BATCH.first(batch_id=batch_id) is not None:
        # Only the first child to start moves the batch (a plain read first: the others need no lock on it).
        _start(batch_id, counts)
    if counts.finished >= counts.total:
        _finish(batch_id, counts)
    if counts.mode == BatchMode.SEQUENCE and job.status != JobStatus.RUNNING:
        transaction.on_commit(lambda: advance(batch_id), robust=True)
    transaction.on_commit(lambda: progress.touch(batch_id), robust=True)


def _start(batch_id: uuid.UUID, counts: Batch) -> None:
    """A child started: a queued batch is running now."""

    def change(batch: Job) -> None:
        batch.status = JobStatus.RUNNING
        batch.started_at = batch.started_at or timezone.now()
        _show(batch, counts)

    transitions.transition(batch_id, "job.started", allowed=(JobStatus.QUEUED,), change=change)


def _finish(batch_id: uuid.UUID, counts: Batch) -> None:
    """The last child finished: so does the batch."""
    status, error = outcome(counts)

    def change(batch: Job) -> None:
        batch.status = status
        batch.error = error
        batch.finished_at = timezone.now()
        _show(batch, counts)

    # Like a job's: a cancelled batch is a transition, the others a finish (whose receivers notify the owner).
    end = transitions.transition if status == JobStatus.CANCELLED else transitions.finish
    end(batch_id, f"job.{status}", allowed=UNFINISHED, change=change)


def _reopen(batch_id: uuid.UUID, counts: Batch) -> None:
    """A child of a finished batch was retried: the batch is queued again, as a new attempt."""
    Batch.objects.filter(pk=batch_id).update(cancel_requested=False)
    counts.cancel_requested = False

    def change(batch: Job) -> None:
        batch.status = JobStatus.QUEUED
        batch.attempt += 1
        batch.error = batch.started_at = batch.finished_at = None
        _show(batch, counts)

    transitions.transition(batch_id, "job.queued", allowed=FINISHED, change=change, note="retried")


def _show(batch: Job, counts: Batch) -> None:
    """The batch's progress and counts as they are in this transaction (its event carries them)."""
    batch.progress = batch_progress(counts)
    batch.batch_counts = counts


def outcome(counts: Batch) -> tuple[str, dict[str, str] | None]:
    """The batch's final status, and its error, once every child has finished."""
    if counts.cancel_requested:
        return JobStatus.CANCELLED, None
    if counts.succeeded == counts.total:
        return JobStatus.SUCCEEDED, None
    message = (
        f"{counts.failed} of {counts.total} jobs failed, {counts.cancelled} were cancelled "
        f"and {counts.succeeded} succeeded."
    )
    return JobStatus.FAILED, {"code": "children_failed", "message": message}


def batch_progress(counts: Batch) -> dict[str, Any]:
    """The batch's Job.progress: finished children of the total."""
    parts = [f"{getattr(counts, status)} {status}" for status in ("running", "failed", "cancelled")]
    message = ", ".join(part for part in parts if not part.startswith("0 "))
    return build_progress(counts.finished, counts.total, None, message)


# --- sequences ------------------------------------------------------------------------------------


def advance(batch_id: uuid.UUID) -> None:
    """Hand out a sequence's next step, or cancel the steps after one that did not succeed. Idempotent."""
    steps = list(
        Job.objects.filter(parent_id=batch_id)
        .order_by("position")
        .values_list("id", "status", "celery_task_id", "hold")
    )
    for index, (step_id, status, task_id, held) in enumerate(steps):
        if status == JobStatus.SUCCEEDED:
            continue
        if status in (JobStatus.FAILED, JobStatus.CANCELLED):
            for later_id, later_status, *_ in steps[index + 1 :]:
                if later_status == JobStatus.QUEUED:
                    transitions.cancel(later_id, note=f"step {index} did not succeed")
        elif status == JobStatus.QUEUED and not task_id and not held:  # a held step waits for its slot
            _send_step(step_id)
        return


def _send_step(step_id: uuid.UUID) -> None:
    """A step's turn has come: give it a task and send it."""

    def waiting(job: Job) -> bool:
        return not job.celery_task_id and not job.hold

    def change(job: Job) -> None:
        job.celery_task_id = transitions.new_task_id()

    step = transitions.transition(step_id, "job.queued", allowed=(JobStatus.QUEUED,), guard=waiting, change=change)
    if step is not None:
        transaction.on_commit(lambda: transitions.send_task(step), robust=True)


def substitute(job: Job) -> dict[str, Any]:
    """The step's params with each {{ steps.N.result.PATH }} replaced by that value, as text."""
    params: dict[str, Any] = job.params
    if job.parent_id is None or not _templated_fields(params):
        return params
    earlier = Job.objects.filter(parent_id=job.parent_id, position__lt=job.position)
    results = {
        position: result for position, result in earlier.values_list("position", "result") if position is not None
    }
    replaced: dict[str, Any] = _replaced(params, results, "")
    return replaced


def _replaced(value: Any, results: dict[int, Any], path: str) -> Any:
    if isinstance(value, str):
        return TEMPLATE.sub(lambda match: _value_of(match.group(0), results, path or "params"), value)
    if isinstance(value, dict):
        return {key: _replaced(item, results, f"{path}.{key}" if path else key) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, results, f"{path}.{n}" if path else str(n)) for n, item in enumerate(value)]
    return value


def _value_of(template: str, results: dict[int, Any], field: str) -> str:
    step = STEP.fullmatch(template)
    if step is None or int(step.group(1)) not in results:
        raise InvalidParams("A step refers to a step that is not before it.", {field: _BAD_REF})
    value = results[int(step.group(1))]
    for key in step.group(2).split(".")[1:]:
        value = _dig(value, key)
        if value is _MISSING:
            missing = f"steps.{step.group(1)}.result{step.group(2)} does not resolve: no {key!r} there."
            raise InvalidParams("A step refers to a result that does not exist.", {field: missing})
    return value if isinstance(value, str) else _text(value)


_MISSING = object()


def _dig(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key, _MISSING)
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return _MISSING


def _text(value: Any) -> str:
    """A result value as text in a string param: JSON for objects, lists and booleans."""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


# --- cancel and retry of a whole batch --------------------------------------------------------------


def cancel(batch_id: uuid.UUID) -> Job | None:
    """Cancel every unfinished child, each in its own transaction, so the batch ends cancelled. None if none was.

    The flag is set first, in its own transaction: the last child's transition reads it.
    """
    Batch.objects.filter(pk=batch_id).update(cancel_requested=True)
    cancelled: list[Job] = []
    unfinished = Job.objects.filter(parent_id=batch_id, status__in=UNFINISHED)
    # The last steps first: a sequence must not hand out a step while the ones before are being cancelled.
    for child_id in list(unfinished.order_by("-position").values_list("id", flat=True)):
        child = transitions.cancel(child_id, note="its batch was cancelled")
        if child is not None:
            cancelled.append(child)
    task_ids = [child.celery_task_id for child in cancelled if child.celery_task_id]
    if task_ids:
        transitions.revoke_on_commit(task_ids)
    return Job.objects.filter(pk=batch_id).first() if cancelled else None


def retry(batch_id: uuid.UUID, resend_unknown: bool = False) -> Job | None:
    """Retry the failed and cancelled children, in their order; the batch is queued again with attempt + 1.
    None if no child could be retried. `resend_unknown` goes to each child (tasks.transitions.retry)."""
    redo = Job.objects.filter(parent_id=batch_id, status__in=(JobStatus.FAILED, JobStatus.CANCELLED))
    retried = 0
    for child_id, kind in list(redo.order_by("position").values_list("id", "kind")):
        note = transitions.retry_note("its batch was retried", kind, resend_unknown)
        if transitions.retry(child_id, note=note, resend_unknown=resend_unknown) is not None:
            retried += 1
    return Job.objects.filter(pk=batch_id).first() if retried else None


# --- the reconciler ---------------------------------------------------------------------------------


def recount(batch_id: uuid.UUID) -> dict[str, int]:
    rows = Job.objects.filter(parent_id=batch_id).values("status").annotate(n=Count("id"))
    found = {row["status"]: row["n"] for row in rows}
    return {status: found.get(status, 0) for status in COUNTED}


def repair() -> int:
    """Compare each unfinished batch's counters with a recount; fix and log those that disagree. How many."""
    repaired = 0
    unfinished = Job.objects.filter(kind=BATCH_KIND, parent=None, status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
    for batch_id in list(unfinished.values_list("id", flat=True)):
        try:  # one batch whose row stays locked (a frozen worker) or that fails must not stop the others' repair
            repaired += _repair(batch_id)
            if Batch.objects.filter(pk=batch_id, mode=BatchMode.SEQUENCE).exists():
                advance(batch_id)
        except Exception:
            logger.exception("batch %s: could not be repaired; the reconciler's next pass tries again", batch_id)
    return repaired


def _repair(batch_id: uuid.UUID) -> bool:
    """Set the counters from a recount when they disagree, then finish the batch if it is done."""
    with transaction.atomic():
        counts = Batch.objects.select_for_update().get(pk=batch_id)
        true = recount(batch_id)  # children change only while they hold this row: the recount is exact
        if true == {status: getattr(counts, status) for status in COUNTED}:
            return False
        logger.warning("batch %s: counters %s disagreed with a recount %s; repaired", batch_id, counts.counts(), true)
        for status, n in true.items():
            setattr(counts, status, n)
        counts.save(update_fields=list(COUNTED))
        if counts.finished >= counts.total:
            _finish(batch_id, counts)
    return True


# --- progress, coalesced per process -----------------------------------------------------------------


class Coalescer:
    """At most one job.progress of a batch per interval from this process: leading edge, then trailing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[uuid.UUID, float] = {}
        self._pending: set[uuid.UUID] = set()
        self._closed = False
        self.sent = 0

    def close(self) -> None:
        """Send nothing more, not even what is pending (tests end with this)."""
        with self._lock:
            self._closed = True

    def touch(self, batch_id: uuid.UUID) -> None:
        interval = settings.JOBS_BATCH_PROGRESS_INTERVAL
        now = time.monotonic()
        with self._lock:
            if batch_id in self._pending or self._closed:
                return
            due = self._last.get(batch_id, 0.0) + interval
            if now < due:
                self._pending.add(batch_id)
                flush_timer.call_at(due, lambda: self._trailing(batch_id))
                return
            self._last[batch_id] = now
        self._send(batch_id)

    def _trailing(self, batch_id: uuid.UUID) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending.discard(batch_id)
            self._last[batch_id] = time.monotonic()
        self._send(batch_id)

    def _send(self, batch_id: uuid.UUID) -> None:
        self.sent += 1
        if not save_progress(batch_id):
            with self._lock:
                self._last.pop(batch_id, None)  # finished: its final event carried the counts


progress = Coalescer()


def save_progress(batch_id: uuid.UUID) -> bool:
    """Store the batch's progress from its counters with a new seq and publish it; False once it finished."""
    with transaction.atomic():
        batch = Job.objects.select_for_update().only("id", "owner_id", "status", "seq").filter(pk=batch_id).first()
        if batch is None or batch.is_finished:
            return False
        counts = Batch.objects.get(pk=batch_id)
        batch.seq += 1
        batch.progress = batch_progress(counts)
        batch.save(update_fields=["seq", "progress", "updated_at"])
        events.send_on_commit(
            events.job_progressed,
            owner_id=batch.owner_id,
            job_id=str(batch.pk),
            seq=batch.seq,
            progress=batch.progress,
            eta_seconds=None,
            parent_id=None,
            batch=counts.counts(),
        )
    return True


def connect() -> None:
    events.child_moved.connect(child_moved, dispatch_uid="tasks.batches.child_moved")
