"""Concurrency limits and paused kinds: whether a job may start, decided when its task claims it.

* `JOBS_CONCURRENCY` ("file.process=4,email.send=2"): at most that many running jobs of a
  kind over the whole cluster; `JOBS_CONCURRENCY_PER_USER`: at most that many of one owner.
* An operator may pause a kind (the operations view): its queued jobs wait; running ones finish.

A job that may not start is *held*: it stays queued with no task (celery_task_id ""), `hold`
says why, and its progress message tells its owner ("waiting: 4 file.process jobs already
running"). It holds no worker slot: its task acknowledged and ended. When a slot frees (a job
leaves running: tasks.events.slot_freed) or a kind resumes, `release` hands held jobs out
again, highest priority then oldest first; the reconciler does the same every run, should a
release be lost with a process.

A running job counts while its process is alive, as tasks.liveness tells it: on the same host
by its pid (at once), from another host by its heartbeat (JOBS_LEASE_SECONDS). So the slot of a
job whose worker died is free as soon as that is known, before the reconciler requeues it. The
claims of a limited kind take turns on its KindState row's lock (and those of an owner, with
a per-user limit, on the owner's row), so two workers on two hosts never both take the last
slot.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Case, IntegerField, Value, When

from tasks import events, kinds, liveness, transitions
from tasks.models import Hold, Job, JobStatus, KindState, Priority, build_progress, empty_progress

logger = logging.getLogger(__name__)

# How long a process trusts its copy of the paused kinds (a pause takes effect within this).
_PAUSED_CACHE_SECONDS = 1.0
# Held jobs looked at per release; the next release or reconcile takes the rest.
_RELEASE_BATCH = 200


@dataclass(frozen=True)
class Refusal:
    hold: str
    message: str


def check_settings() -> None:
    """Refuse, at start-up, a limit for a kind that does not exist (a typo would silently limit nothing)."""
    unknown = sorted(set(settings.JOBS_CONCURRENCY) - set(kinds.names()))
    if unknown:
        raise ImproperlyConfigured(f"JOBS_CONCURRENCY names no kind {', '.join(unknown)}; kinds: {kinds.names()}")


def connect() -> None:
    events.slot_freed.connect(slot_freed, dispatch_uid="tasks.limits.slot_freed")


# --- the claim ----------------------------------------------------------------------------------


def in_force() -> bool:
    """Whether any limit is set or any kind paused (if not, a claim needs no check at all)."""
    return bool(settings.JOBS_CONCURRENCY or settings.JOBS_CONCURRENCY_PER_USER or _paused_kinds())


def refusal(job_id: str, task_id: str) -> Refusal | None:
    """Why the queued job this task would claim may not start now; None if it may.

    Takes the locks that make the claims of one limited kind, and of one owner, take turns:
    call it in the claim's transaction, before the job's own row is locked.
    """
    job = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED, celery_task_id=task_id).values("kind", "owner_id")
    found = job.first()
    if found is None:
        return None  # not this task's to claim: the claim itself says so
    kind, owner_id = found["kind"], found["owner_id"]
    limit = settings.JOBS_CONCURRENCY.get(kind)
    # A limited kind's claims take turns on its row's lock. An unlimited one takes that lock only when the
    # cache says paused: the row decides, under the lock a resume takes too, so a worker whose cache lags a
    # resume does not hold again the job that resume has just handed out, and a hold that commits while
    # a resume runs is seen by that resume's release.
    if (limit is not None or kind in _paused_kinds()) and _lock_kind(kind).paused:
        return _paused(kind)
    if limit is not None and running(kind=kind) >= limit:
        return Refusal(Hold.KIND_LIMIT, f"waiting: {limit} {kind} jobs already running")
    per_user = settings.JOBS_CONCURRENCY_PER_USER
    if per_user:
        User.objects.select_for_update().filter(pk=owner_id).exists()
        if running(owner_id=owner_id) >= per_user:
            return Refusal(Hold.USER_LIMIT, f"waiting: {per_user} of your jobs already running")
    return None


def _paused(kind: str) -> Refusal:
    return Refusal(Hold.PAUSED, f"waiting: {kind} is paused by an operator")


def hold(job_id: str, task_id: str, refused: Refusal) -> Job | None:
    """Hold a job its task may not start: queued, with no task, saying why (its task then ends)."""

    def still_this_task(job: Job) -> bool:
        return job.celery_task_id == task_id

    def change(job: Job) -> None:
        job.hold = refused.hold
        job.celery_task_id = ""
        job.progress = build_progress(0, None, None, refused.message)

    return transitions.transition(
        job_id, "job.queued", allowed=(JobStatus.QUEUED,), change=change, guard=still_this_task, note=refused.message
    )


def running(kind: str | None = None, owner_id: int | None = None) -> int:
    """Running jobs (of a kind, or of an owner) that hold a slot: their process is alive (tasks.liveness:
    on this host its pid, from another its heartbeat within JOBS_LEASE_SECONDS)."""
    jobs = Job.objects.filter(status=JobStatus.RUNNING)
    if kind is not None:
        jobs = jobs.filter(kind=kind)
    if owner_id is not None:
        jobs = jobs.filter(owner_id=owner_id)
    return sum(1 for worker, beat in jobs.values_list("worker", "heartbeat_at") if not liveness.is_gone(worker, beat))


def _lock_kind(kind: str) -> KindState:
    KindState.objects.bulk_create([KindState(kind=kind)], ignore_conflicts=True)
    return KindState.objects.select_for_update().get(kind=kind)


# --- paused kinds ---------------------------------------------------------------------------------


class _PausedCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def get(self) -> frozenset[str]:
        with self._lock:
            if time.monotonic() - self._read_at >= _PAUSED_CACHE_SECONDS:
                self._kinds = frozenset(KindState.objects.filter(paused=True).values_list("kind", flat=True))
                self._read_at = time.monotonic()
            return self._kinds

    def forget(self) -> None:
        with self._lock:
            self._read_at = float("-inf")


_paused_cache = _PausedCache()


def _paused_kinds() -> frozenset[str]:
    return _paused_cache.get()


def forget_paused() -> None:
    """Read the paused kinds afresh at the next claim (a pause or resume made here, or a new database)."""
    _paused_cache.forget()


def set_paused(kind: str, paused: bool, by: str) -> KindState:
    """Pause or resume a kind (an operator). Resuming hands out its held jobs at once."""
    kinds.get(kind)  # UnknownKind for a name that is not one
    with transaction.atomic():
        state = _lock_kind(kind)
        state.paused, state.changed_by = paused, by[:150]
        state.save()
    forget_paused()
    logger.warning("kind %s %s by %s", kind, "paused" if paused else "resumed", by)
    if not paused:
        release(kind=kind)
    return state


def states() -> dict[str, KindState]:
    return {state.kind: state for state in KindState.objects.all()}


# --- release ----------------------------------------------------------------------------------------

_BY_PRIORITY = Case(
    When(priority=Priority.HIGH, then=Value(0)),
    When(priority=Priority.NORMAL, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def slot_freed(sender: Any, kind: str, owner_id: int, **fields: Any) -> None:
    """A job left running (after its transaction committed): a held job of its kind or owner may go."""
    if kind in settings.JOBS_CONCURRENCY:
        release(kind=kind)
    if settings.JOBS_CONCURRENCY_PER_USER:
        release(owner_id=owner_id)


def release(kind: str | None = None, owner_id: int | None = None) -> int:
    """Hand out the held jobs (of a kind, or of an owner) that could start now; how many.

    The counts are read without locks: a job released one slot too many is held again by its claim.
    """
    held = Job.objects.filter(status=JobStatus.QUEUED).exclude(hold="")
    if kind is not None:
        held = held.filter(kind=kind)
    if owner_id is not None:
        held = held.filter(owner_id=owner_id)
    candidates = list(held.order_by(_BY_PRIORITY, "created_at").values_list("id", "kind", "owner_id")[:_RELEASE_BATCH])
    room = _Room()
    released = 0
    for job_id, job_kind, job_owner in candidates:
        if room.take(job_kind, job_owner) and _unhold(job_id) is not None:
            released += 1
    return released


def release_all() -> int:
    """Every kind and owner with held jobs (the reconciler): what a lost release left waiting."""
    held = Job.objects.filter(status=JobStatus.QUEUED).exclude(hold="")
    released = sum(release(kind=kind) for kind in held.values_list("kind", flat=True).distinct())
    if settings.JOBS_CONCURRENCY_PER_USER:
        owners = held.filter(hold=Hold.USER_LIMIT).values_list("owner_id", flat=True).distinct()
        released += sum(release(owner_id=owner) for owner in owners)
    return released


class _Room:
    """The slots free now, per kind and per owner, as jobs are released one by one."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.owners: dict[int, int] = {}
        self.paused = _paused_kinds()

    def take(self, kind: str, owner_id: int) -> bool:
        if kind in self.paused:
            return False
        limit = settings.JOBS_CONCURRENCY.get(kind)
        if limit is not None and self.kinds.setdefault(kind, limit - running(kind=kind)) <= 0:
            return False
        per_user = settings.JOBS_CONCURRENCY_PER_USER
        if per_user and self.owners.setdefault(owner_id, per_user - running(owner_id=owner_id)) <= 0:
            return False
        if limit is not None:
            self.kinds[kind] -= 1
        if per_user:
            self.owners[owner_id] -= 1
        return True


def _unhold(job_id: uuid.UUID) -> Job | None:
    def held(job: Job) -> bool:
        return bool(job.hold)

    def change(job: Job) -> None:
        job.hold = ""
        job.progress = empty_progress()

    return transitions.send_again(
        job_id, allowed=(JobStatus.QUEUED,), guard=held, change=change, note="a slot is free", level=logging.INFO
    )
