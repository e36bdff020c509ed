"""Job history: every job of a user (or, for staff, of everyone), newest first, filtered, paged from a cursor.

1. Pages go newest first by (created_at, id) and are read with keyset
   pagination: the cursor is the last job's (created_at, id), and the next
   page is the jobs strictly older. No OFFSET: a page costs the same deep in a
   history of a million jobs as at its top, and pages never repeat or skip a
   job while new ones arrive (they are newer than any cursor).
2. Each filter a page is asked with has an index whose columns end with
   (created_at, id) (tasks.models.Job.Meta.indexes), so a page is one index
   range scan; tests/unit/test_history_uses_its_indexes.py reads the plans.
3. `search` looks, case-insensitively, in the job id, its request_id and the text
   of its public params, kept lowercased in `search_text` when the job is made.
   On PostgreSQL a trigram index (pg_trgm) serves `LIKE '%text%'`; on SQLite the
   search scans at most SEARCH_SCAN_LIMIT of the newest jobs in scope, so it is
   bounded however large the table grows.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from tasks.errors import BadMessage, JobNotFound
from tasks.models import Job, JobEvent

PAGE_DEFAULT = 50
PAGE_MAX = 100
SEARCH_TEXT_CHARS = 2_000
SEARCH_SCAN_LIMIT = 100_000


@dataclass(frozen=True)
class Filter:
    """Every field optional; all given fields must hold (protocol 1.1 Filter)."""

    status: Collection[str] = ()
    kind: Collection[str] = ()
    search: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    # Staff looking at everyone's jobs (the operations view) may narrow them to these owners.
    owner: Collection[int] = field(default=())
    # A batch's children; without it, only jobs that are not children are listed.
    parent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


def search_text(job_id: uuid.UUID, request_id: str, public_params: dict[str, Any]) -> str:
    """What `search` looks in: the id, the request_id and every text and number of the public params."""
    words = [str(job_id), request_id, *_texts(public_params)]
    return " ".join(words).lower()[:SEARCH_TEXT_CHARS]


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def scoped(owner_id: int | None, wanted: Filter) -> QuerySet[Job]:
    """The jobs of `owner_id` (None: everyone's, for staff) that pass the filter, unordered."""
    jobs = Job.objects.all() if owner_id is None else Job.objects.filter(owner_id=owner_id)
    jobs = jobs.filter(parent_id=wanted.parent_id)  # None: top-level jobs only
    if wanted.owner:
        jobs = jobs.filter(owner_id__in=list(wanted.owner))
    if wanted.status:
        jobs = jobs.filter(status__in=list(wanted.status))
    if wanted.kind:
        jobs = jobs.filter(kind__in=list(wanted.kind))
    if wanted.created_after is not None:
        jobs = jobs.filter(created_at__gte=wanted.created_after)
    if wanted.created_before is not None:
        jobs = jobs.filter(created_at__lt=wanted.created_before)
    if wanted.search:
        jobs = _searched(jobs, wanted.search.lower())
    return jobs


def _searched(jobs: QuerySet[Job], text: str) -> QuerySet[Job]:
    matching = jobs.filter(search_text__contains=text)
    if connection.vendor == "postgresql":
        return matching  # the trigram index answers it
    newest = jobs.order_by("-created_at", "-id").values("id")[:SEARCH_SCAN_LIMIT]
    return matching.filter(id__in=newest)


def page(owner_id: int | None, wanted: Filter, limit: int = PAGE_DEFAULT, cursor: str | None = None) -> Page:
    """A page of jobs, newest first, older than the cursor's job; the cursor of the next page, if any."""
    found = list(page_query(owner_id, wanted, limit, cursor))
    more = len(found) > limit
    shown = found[:limit]
    return Page(shown, make_cursor(shown[-1]) if more else None)


def page_query(owner_id: int | None, wanted: Filter, limit: int, cursor: str | None = None) -> QuerySet[Job]:
    """The query of a page: `limit` + 1 jobs, to tell whether more follow."""
    jobs = scoped(owner_id, wanted).select_related("batch_counts").order_by("-created_at", "-id")
    if cursor is not None:
        jobs = jobs.filter(_older_than(*read_cursor(cursor)))
    return jobs[: limit + 1]


def _older_than(created_at: datetime, job_id: uuid.UUID) -> RawSQL:
    """(created_at, id) < (the cursor's): a row comparison, which both databases answer from the
    index's range (an OR of two conditions made SQLite read, and sort, every older job)."""
    values = [
        Job._meta.get_field("created_at").get_db_prep_value(created_at, connection),
        Job._meta.pk.get_db_prep_value(job_id, connection),
    ]
    return RawSQL('("tasks_job"."created_at", "tasks_job"."id") < (%s, %s)', values, output_field=BooleanField())


def owner_names(jobs: list[Job]) -> dict[int, str]:
    """The usernames of the jobs' owners, in one query (staff's listings of everyone's jobs show them)."""
    return dict(User.objects.filter(pk__in={job.owner_id for job in jobs}).values_list("pk", "username"))


def make_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), str(job.pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, uuid.UUID(job_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadMessage("The cursor is not one job.list gave.", {"cursor": "Not a cursor of job.list."}) from None


def find(owner_id: int | None, job_id: str) -> Job:
    """The job, if it is the owner's (any job for None: staff); JobNotFound, the same either way, if not."""
    try:
        jobs = Job.objects.filter(pk=uuid.UUID(job_id))
    except ValueError:
        raise JobNotFound() from None
    job = (jobs if owner_id is None else jobs.filter(owner_id=owner_id)).select_related("batch_counts").first()
    if job is None:
        raise JobNotFound()
    return job


def timeline(job: Job) -> list[JobEvent]:
    """Every state change of the job, oldest first."""
    return list(JobEvent.objects.filter(job=job).order_by("seq"))
