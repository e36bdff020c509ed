"""What the operations view shows of the jobs: live counts, the age of what waits, and the last hour per minute.

A few aggregate queries, each on an index (tasks.models.Job.Meta.indexes), and
none over the whole table: unfinished jobs by kind and status, the oldest queued
job of each kind, and the jobs that finished in the last hour, by minute. The
gateway runs them once per interval per process, whatever the number of staff
watching (gateway.ops).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.db.models.functions import TruncMinute

from tasks import broker, kinds, limits
from tasks.models import FINISHED, UNFINISHED, Job, JobStatus

WINDOW = timedelta(hours=1)


def snapshot(now: datetime) -> dict[str, Any]:
    """Counts and series from the database, as of `now` (the broker's figures are added by `queues`)."""
    since = now - WINDOW
    live = Job.objects.filter(status__in=UNFINISHED).values("kind", "status").annotate(n=Count("id"))
    recent = Job.objects.filter(finished_at__gte=since).values("kind", "status").annotate(n=Count("id"))
    oldest = Job.objects.filter(status=JobStatus.QUEUED).values("kind").annotate(since=Min("updated_at"))
    minutes = (
        Job.objects.filter(finished_at__gte=since, status__in=FINISHED)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute", "status")
        .annotate(n=Count("id"))
    )
    return {
        "at": now,
        "kinds": _by_kind([dict(row) for row in (*live, *recent)]),
        "controls": controls(),
        "oldest_queued": {row["kind"]: row["since"] for row in oldest},
        "per_minute": _series([dict(row) for row in minutes], since, now),
    }


def controls() -> list[dict[str, Any]]:
    """Each kind's switches and limits: paused, its concurrency limit, and how many of its jobs are held."""
    held = dict(
        Job.objects.filter(status=JobStatus.QUEUED).exclude(hold="").values_list("kind").annotate(n=Count("id"))
    )
    states = limits.states()
    return [
        {
            "kind": name,
            "paused": name in states and states[name].paused,
            "limit": settings.JOBS_CONCURRENCY.get(name),
            "held": held.get(name, 0),
        }
        for name in kinds.names()
    ]


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{kind: {status: n}}: queued and running now, the finished ones of the last hour."""
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = table.setdefault(row["kind"], {status: 0 for status in JobStatus.values})
        counts[row["status"]] += row["n"]
    return table


def _series(rows: list[dict[str, Any]], since: datetime, now: datetime) -> dict[str, list[Any]]:
    """One point per minute of the window, oldest first: jobs finished, and of those failed."""
    first = since.replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes = [first + timedelta(minutes=n) for n in range(int((now - first).total_seconds() // 60) + 1)]
    done = dict.fromkeys(minutes, 0)
    failed = dict.fromkeys(minutes, 0)
    for row in rows:
        minute = row["minute"]
        if minute in done:
            done[minute] += row["n"]
            if row["status"] == JobStatus.FAILED:
                failed[minute] += row["n"]
    return {"minutes": minutes, "finished": list(done.values()), "failed": list(failed.values())}


def queues(oldest_queued: dict[str, datetime]) -> list[dict[str, Any]]:
    """Each queue a kind names: messages waiting in the broker, and since when its oldest queued job waits."""
    lengths = broker.queue_lengths()
    rows = []
    for name in kinds.queues():
        kind_names = [kind.name for kind in kinds.all_kinds() if kind.queue == name]
        waits = [oldest_queued[kind] for kind in kind_names if kind in oldest_queued]
        rows.append({"queue": name, "waiting": lengths.get(name), "oldest_since": min(waits) if waits else None})
    return rows
