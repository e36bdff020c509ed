"""A history page is an index range scan in the order of the index, for every filter a page is asked with:
the database's own plan (EXPLAIN) of the page's query says so, over a table of many jobs.

On PostgreSQL (CI's database), the plan must read the filter's index (no sequential scan of the jobs, no
sort); on SQLite, the same (no "SCAN" of the table, no temporary B-tree for the order)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from pytest_django import DjangoDbBlocker

from tasks import history
from tasks.models import Job
from tests.factories import UserFactory

# Each test in a transaction rolled back: the jobs below are made once for the module (20,000 rows took
# 3.5 s a test) and removed after its last test.
pytestmark = pytest.mark.django_db

JOBS_EACH = 4_000
KINDS = ("demo.countdown", "email.send", "file.process", "reports.jobs_csv")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def many_jobs(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[User]:
    """Several users with thousands of jobs each, of every kind and status, then fresh planner statistics."""
    with django_db_blocker.unblock():
        owners = UserFactory.create_batch(5)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for owner in owners:
            jobs = [
                Job(owner=owner, request_id=f"r{n}", kind=KINDS[n % 4], status=STATUSES[n % 5], search_text=f"job {n}")
                for n in range(JOBS_EACH)
            ]
            Job.objects.bulk_create(jobs, batch_size=2_000)
        ids = [owner.pk for owner in owners]
        try:
            _spread_and_analyze(start)
            yield owners[0]
        finally:
            Job.objects.filter(owner_id__in=ids)._raw_delete(Job.objects.db)  # no cascade: nothing refers to them
            User.objects.filter(pk__in=ids).delete()


def _spread_and_analyze(start: datetime) -> None:
    with connection.cursor() as cursor:
        # Spread the creation times, as real jobs are.
        if connection.vendor == "postgresql":
            cursor.execute("UPDATE tasks_job SET created_at = %s + (random() * interval '300 days')", [start])
            cursor.execute("ANALYZE tasks_job")
        else:
            cursor.execute(
                "UPDATE tasks_job SET created_at = datetime(%s, '+' || (abs(random()) % 25920000) || ' seconds')",
                [start.isoformat()],
            )
            cursor.execute("ANALYZE")


CASES = [
    ("own jobs", "own", history.Filter(), "job_owner_created"),
    ("own jobs by status", "own", history.Filter(status=["failed"]), "job_owner_status_created"),
    ("own jobs by kind", "own", history.Filter(kind=["email.send"]), "job_owner_kind_created"),
    ("everyone's jobs", "all", history.Filter(), "job_created"),
    ("everyone's jobs by status", "all", history.Filter(status=["failed"]), "job_status_created"),
]


@pytest.mark.parametrize(("case", "scope", "wanted", "index"), CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("deep", [False, True], ids=["first page", "from a cursor"])
def test_a_page_reads_its_filter_s_index_in_order(
    many_jobs: User, case: str, scope: str, wanted: history.Filter, index: str, deep: bool
) -> None:
    owner_id = many_jobs.pk if scope == "own" else None
    cursor = None
    if deep:
        middle = history.page(owner_id, wanted, limit=100)
        cursor = history.make_cursor(middle.jobs[-1])
    query = history.page_query(owner_id, wanted, 50, cursor)
    if connection.vendor == "postgresql":
        plan = json.loads(query.explain(format="json"))
        nodes = list(_nodes(plan[0]["Plan"]))
        used = {node.get("Index Name") for node in nodes}
        assert index in used, nodes
        assert not any(node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "tasks_job" for node in nodes)
        assert not any(node["Node Type"] in ("Sort", "Incremental Sort") for node in nodes), nodes
    else:
        plan = query.explain()
        assert f"USING INDEX {index}" in plan, plan
        # A SEARCH of the index's range, or a SCAN of the whole index in its order that the
        # LIMIT stops early; never the table itself, nor a sort of what was read.
        scans = [line for line in plan.splitlines() if "tasks_job" in line]
        assert all("USING INDEX" in line or "USING COVERING INDEX" in line for line in scans), plan
        assert "TEMP B-TREE" not in plan, plan


def test_a_page_is_the_same_jobs_the_filter_names(many_jobs: User) -> None:
    wanted = history.Filter(status=["failed"], kind=["email.send"])
    pages = []
    cursor = None
    while True:
        found = history.page(many_jobs.pk, wanted, limit=100, cursor=cursor)
        pages += found.jobs
        cursor = found.next_cursor
        if cursor is None:
            break
    expected = Job.objects.filter(owner=many_jobs, status="failed", kind="email.send").order_by("-created_at", "-id")
    assert [job.pk for job in pages] == list(expected.values_list("pk", flat=True))
    assert all(a.created_at >= b.created_at for a, b in itertools.pairwise(pages))
    assert (
        datetime(2026, 1, 1, tzinfo=UTC)
        <= pages[-1].created_at
        < datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=301)
    )


def _nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
