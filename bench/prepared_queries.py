"""Benchmark 10: the hot reads and writes built once (patches.prepared) against the ORM compiling them every time.

    .venv/bin/python -m bench.prepared_queries [--calls 2000] [--json FILE]

A private SQLite file (or BENCH_DATABASE_URL's PostgreSQL), one user with 20 jobs
(10 finished), one notice and 3 unread notifications. Each read that a socket's
connect or a worker's transition makes is timed as the project runs it (a
Prepared query) and, as the baseline in the same run, built with the ORM as it
was written before (a queryset compiled on each call), alternating in rounds of
`--calls` / 10 so that both see the same machine. Reported: CPU µs per call (this
process's, median of the rounds), and the database work of one token socket's
connect (its token with its groups, the hello's snapshot, notices and unread
count), the sum of its reads; the baseline's is the same reads as the ORM wrote
them, the notices included (ours come from the process's copy).

The writes (patches.prepared.Writes) the same way, each in its own transaction as
the service makes them, against the `save()` / `create()` they replaced: a
transition's UPDATE of the job with its event INSERT, a submit's INSERT of a job
born queued with its two events, and a job's final notification.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Row, make_user, parser, private_stack, report

ROUNDS = 10


def cpu_per_call(work: Callable[[], Any], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        work()
    return (time.process_time() - started) / calls


def pairs(owner: Any, raw_token: str, job_id: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (the ORM as before, the project's prepared read), each returning the same rows."""
    from django.db import transaction
    from django.db.models import Q
    from django.utils import timezone

    from accounts import groups, tokens
    from accounts.models import ApiToken
    from notifications import inbox, notices
    from notifications.models import Notice, Notification
    from tasks import services, transitions
    from tasks.models import FINISHED, UNFINISHED, Job

    def orm_snapshot() -> list[Job]:  # the same two statements as services.snapshot's, compiled each time
        jobs = Job.objects.filter(owner=owner, parent=None).select_related("batch_counts")
        unfinished = sorted(jobs.filter(status__in=UNFINISHED).order_by(), key=lambda job: job.created_at, reverse=True)
        return unfinished + list(jobs.filter(status__in=FINISHED).order_by("-created_at")[:50])

    def orm_notices() -> list[Notice]:
        audience = Q(group__isnull=True) | Q(group_id__in=list(owner.groups.values_list("id", flat=True)))
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        return list(Notice.objects.filter(audience, unexpired).order_by("-created_at", "-id")[: notices.HELLO_NOTICES])

    group_ids = list(owner.groups.values_list("id", flat=True))

    def orm_token() -> ApiToken | None:
        digest = tokens.digest(raw_token)
        return ApiToken.objects.select_related("user").filter(digest=digest, revoked_at__isnull=True).first()

    def orm_locked_read() -> Job | None:
        with transaction.atomic():
            return Job.objects.select_for_update().defer("search_text").filter(pk=job_id).first()

    def prepared_locked_read() -> Job | None:
        with transaction.atomic():
            return transitions._LOCKED.first(job_id=job_id)

    return {
        "hello snapshot (2 queries)": (orm_snapshot, lambda: services.snapshot(owner, 50)),
        # the per-user query, which a hello uses only when there are too many notices to keep a copy of
        "hello notices, per-user query": (
            orm_notices,
            lambda: notices._ACTIVE.all(user_id=owner.pk, now=timezone.now()),
        ),
        # what a hello does: filter this process's copy of every unexpired notice (read again every 2 s)
        "hello notices": (orm_notices, lambda: notices.active_for(owner.pk, group_ids)),
        "unread count": (
            lambda: Notification.objects.filter(user_id=owner.pk, read_at__isnull=True).count(),
            lambda: inbox.unread_count(owner.pk),
        ),
        "auth groups": (
            lambda: list(owner.groups.values_list("id", flat=True)),
            lambda: groups.group_ids(owner.pk),
        ),
        "token handshake": (orm_token, lambda: tokens._ACTIVE_TOKEN.first(hashed=tokens.digest(raw_token))),
        # a token socket's: the token, its user and the user's group ids in one statement
        "token and groups": (
            lambda: (orm_token(), list(owner.groups.values_list("id", flat=True))),
            lambda: tokens._ACTIVE_TOKEN_AND_GROUPS.all(hashed=tokens.digest(raw_token)),
        ),
        "transition's locked read (in a transaction)": (orm_locked_read, prepared_locked_read),
    }


def write_pairs(owner: Any, job_id: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (the ORM's save/create as before, the project's Writes), each writing the same rows.

    `owner` and `job_id` are a user and job of their own: the rows written here leave the reads' user as seeded.
    """
    import itertools
    import uuid

    from django.db import transaction
    from django.utils import timezone

    from notifications import inbox
    from notifications.models import Level, Notification, NotificationKind
    from tasks import transitions
    from tasks.models import Job, JobEvent, JobStatus

    job = Job.objects.get(pk=job_id)
    serial = itertools.count(1)
    fields = ["status", "seq", "heartbeat_at", "updated_at"]

    def moved() -> None:
        job.seq += 1
        job.heartbeat_at = timezone.now()

    def orm_transition() -> None:
        with transaction.atomic():
            moved()
            job.save(update_fields=fields)
            JobEvent.objects.create(job=job, seq=job.seq, event="job.progress", at=job.updated_at, note="")

    def prepared_transition() -> None:
        with transaction.atomic():
            moved()
            transitions._JOBS.update(job, fields)
            transitions._EVENTS.insert(
                transitions._EVENT_FIELDS, [(job.pk, job.seq, "job.progress", job.updated_at, "")]
            )

    def new_job() -> Job:
        number = next(serial)
        return Job(
            id=uuid.uuid4(), owner=owner, kind="demo.countdown", params={"steps": 10}, request_id=f"write-{number}"
        )

    def orm_submit() -> None:
        with transaction.atomic():
            created = new_job()
            created.status, created.seq = JobStatus.QUEUED, transitions.QUEUED_SEQ
            created.save(force_insert=True)
            JobEvent.objects.bulk_create(
                [
                    JobEvent(job=created, seq=transitions.ACCEPTED_SEQ, event="job.accepted", at=created.created_at),
                    JobEvent(job=created, seq=transitions.QUEUED_SEQ, event="job.queued", at=created.created_at),
                ]
            )

    def prepared_submit() -> None:
        # What transitions.born_queued writes (without its on-commit event and log line, which neither pays here).
        with transaction.atomic():
            created = new_job()
            created.status, created.seq = JobStatus.QUEUED, transitions.QUEUED_SEQ
            transitions._JOBS.create(created)
            transitions._EVENTS.insert(
                transitions._EVENT_FIELDS,
                [
                    (created.pk, transitions.ACCEPTED_SEQ, "job.accepted", created.created_at, ""),
                    (created.pk, transitions.QUEUED_SEQ, "job.queued", created.created_at, ""),
                ],
            )

    def notification() -> Notification:
        return Notification(user=owner, kind=NotificationKind.JOB_SUCCEEDED, level=Level.INFO, text="done", job=job)

    def orm_notification() -> None:
        with transaction.atomic():
            notification().save(force_insert=True)

    def prepared_notification() -> None:
        with transaction.atomic():
            inbox._NOTIFICATIONS.create(notification())

    return {
        "transition's UPDATE and event INSERT (a transaction)": (orm_transition, prepared_transition),
        "submit's job INSERT and its 2 events (a transaction)": (orm_submit, prepared_submit),
        "final notification INSERT (a transaction)": (orm_notification, prepared_notification),
    }


def seed(owner: Any) -> Any:
    from notifications.models import Notice, Notification, NotificationKind
    from tasks.models import Job, JobStatus

    jobs = [
        Job.objects.create(
            owner=owner,
            kind="demo.countdown",
            params={"steps": 10},
            status=JobStatus.SUCCEEDED if n % 2 else JobStatus.QUEUED,
            request_id=f"bench-{n}",
        )
        for n in range(20)
    ]
    Notice.objects.create(text="maintenance tonight", level="info")
    for _ in range(3):
        Notification.objects.create(user=owner, kind=NotificationKind.NOTICE, text="unread")
    return jobs[0].pk


def seed_job(owner: Any) -> Any:
    from tasks.models import Job, JobStatus

    return Job.objects.create(
        owner=owner, kind="demo.countdown", params={}, status=JobStatus.RUNNING, request_id="w"
    ).pk


def measure(calls: int) -> dict[str, tuple[float, float]]:
    owner, raw_token = make_user("prepared")
    job_id = seed(owner)
    writer, _ = make_user("prepared-writes")
    work = {**pairs(owner, raw_token, job_id), **write_pairs(writer, seed_job(writer))}
    for orm, prepared in work.values():
        orm(), prepared()  # compile the prepared ones, warm the caches of both
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in work}
    for _ in range(ROUNDS):
        for name, (orm, prepared) in work.items():
            times[name][0].append(cpu_per_call(orm, calls // ROUNDS))
            times[name][1].append(cpu_per_call(prepared, calls // ROUNDS))
    return {name: (statistics.median(orm), statistics.median(mine)) for name, (orm, mine) in times.items()}


def rows(measured: dict[str, tuple[float, float]]) -> list[Row]:
    name = "10 prepared reads and writes, CPU per call"
    out = [
        Row(name, f"{what} (baseline: the ORM compiling it each call)", f"{orm * 1e6:.0f} µs", f"{mine * 1e6:.0f} µs")
        for what, (orm, mine) in measured.items()
    ]
    connect = ("hello snapshot (2 queries)", "hello notices", "unread count", "token and groups")
    orm, mine = (sum(measured[read][side] for read in connect) for side in (0, 1))
    out.append(
        Row(name, "one connect's database work (token, groups, hello)", f"{orm * 1e6:.0f} µs", f"{mine * 1e6:.0f} µs")
    )
    return out


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--calls", type=int, default=2000, help="calls of each read, in each way")
    args = args_parser.parse_args()
    with private_stack():
        measured = measure(args.calls)
    report(rows(measured), args.json)


if __name__ == "__main__":
    main()
