"""History pages on a big table: job.list for a user with 1,000,000 jobs among 10,000,000, on PostgreSQL.

    .venv/bin/python -m bench.history [--rows 10000000] [--user-rows 1000000] [--samples 200]

It builds (once, and keeps between runs) a database of its own on the local
PostgreSQL (BENCH_HISTORY_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/jobs_bench_history):
the service's tables by its migrations, then `--rows` jobs, `--user-rows` of them of one user and the
rest spread over 999 others, of four kinds and five statuses, created over a year. Then it times the
query of a history page (tasks.history.page_query, through the ORM, 50 jobs) from a random depth of that
user's history (a cursor taken from a random job of theirs), for each filter a page is asked with:

* ours: with the indexes this service adds (one per filter, ending with created_at, id);
* baseline: the same queries in a transaction that drops those indexes (then rolls back), so PostgreSQL
  has what it would have without them: the primary key and the owner foreign key.

And the search (trigram index) beside the same search without it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.harness import Row, ms, parser, percentile, report

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/jobs_bench_history"
HISTORY_INDEXES = ("job_owner_created", "job_owner_status_created", "job_owner_kind_created", "job_created",
                   "job_status_created")  # fmt: skip
SEARCH_INDEX = "job_search_trgm"
OTHER_USERS = 999
CHUNK = 1_000_000
TARGET_P99 = 0.050


def main() -> None:
    args = _arguments()
    url = os.environ.get("BENCH_HISTORY_DATABASE_URL", DEFAULT_URL)
    _create_database(url)
    os.environ.update(DJANGO_SETTINGS_MODULE="core.settings.local", DATABASE_URL=url, DATABASE_CONN_MAX_AGE="0")
    import django  # set up against the bench's own database, chosen above

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    owner = _build(url, args.rows, args.user_rows)
    rows = _measure(owner, args.user_rows, args.samples)
    report(rows, args.json)


def _arguments() -> Any:
    options = parser(__doc__)
    options.add_argument("--rows", type=int, default=10_000_000, help="jobs in the table (default 10,000,000)")
    options.add_argument("--user-rows", type=int, default=1_000_000, help="of them, one user's (default 1,000,000)")
    options.add_argument("--samples", type=int, default=200, help="pages timed per filter with the indexes")
    return options.parse_args()


def _create_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def _build(url: str, rows: int, user_rows: int) -> int:
    """The table as asked for, built once: the owner id of the user with `user_rows` jobs.

    Loaded the way a bulk load is: the secondary indexes (as the migrations made them) dropped first and
    made again after, which takes minutes instead of the hour that maintaining them row by row would.
    """
    with psycopg.connect(url, autocommit=True) as db:
        owner = _users(db)
        have = db.execute("SELECT count(*) FROM tasks_job").fetchone()
        if have and have[0] == rows:
            return owner
        started = time.monotonic()
        print(f"building {rows:,} jobs (once; kept in {urlsplit(url).path.lstrip('/')})", flush=True)
        db.execute("TRUNCATE tasks_job CASCADE")
        indexes = db.execute(SECONDARY_INDEXES).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        try:
            for first in range(1, rows + 1, CHUNK):
                last = min(rows, first + CHUNK - 1)
                db.execute(INSERT, {"first": first, "last": last, "owner": owner, "user_rows": user_rows})
                print(f"  {last:,} jobs, {time.monotonic() - started:.0f} s", flush=True)
        except BaseException:
            db.execute("TRUNCATE tasks_job CASCADE")  # empty, and indexed as before: the next run builds again
            raise
        finally:
            db.execute("SET maintenance_work_mem = '1GB'")
            for name, definition in indexes:
                db.execute(definition)
                print(f"  index {name}, {time.monotonic() - started:.0f} s", flush=True)
        db.execute("VACUUM ANALYZE tasks_job")
        print(f"built in {time.monotonic() - started:.0f} s", flush=True)
        return owner


# Every index of the job table but its primary key's, with the statement that makes it again.
SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'tasks_job' AND indexname NOT IN (
    SELECT conname FROM pg_constraint WHERE conrelid = 'tasks_job'::regclass AND contype IN ('p', 'u'))
"""


def _users(db: psycopg.Connection[Any]) -> int:
    """The bench's users (bench-0 has the big history), made if missing."""
    db.execute(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
        "is_active, date_joined) SELECT '!', false, 'bench-' || n, '', '', '', false, true, now() "
        "FROM generate_series(0, %s) n ON CONFLICT (username) DO NOTHING",
        [OTHER_USERS],
    )
    found = db.execute("SELECT id FROM auth_user WHERE username = 'bench-0'").fetchone()
    assert found is not None
    return int(found[0])


# Jobs first..last: the first `user_rows` the user's, the rest spread over the other bench users.
INSERT = """
INSERT INTO tasks_job (id, owner_id, kind, params, request_id, status, attempt, seq, progress, result, error,
                       celery_task_id, deliveries, worker, artifacts, log_count, search_text, heartbeat_at,
                       created_at, started_at, finished_at, updated_at, priority, hold)
SELECT md5('job' || g)::uuid,
       CASE WHEN g <= %(user_rows)s THEN %(owner)s ELSE others.ids[1 + g %% cardinality(others.ids)] END,
       (ARRAY['demo.countdown', 'email.send', 'file.process', 'reports.jobs_csv'])[1 + g %% 4],
       jsonb_build_object('steps', g %% 1000),
       'r' || g,
       (ARRAY['succeeded', 'succeeded', 'failed', 'cancelled', 'succeeded'])[1 + (g / 4) %% 5],
       1, 4, '{"current": 1, "total": 1, "percent": 100.0, "stage": "", "message": ""}'::jsonb, NULL, NULL,
       '', 1, '', '[]'::jsonb, 0, md5('job' || g)::uuid || ' r' || g || ' ' || (g %% 1000), NULL,
       at, at, at, at, 'normal', ''
FROM (SELECT g, timestamptz '2026-01-01' + ((g * 7919) %% 31536000) * interval '1 second' AS at
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) g) series,
     (SELECT array_agg(id ORDER BY id) AS ids FROM auth_user
      WHERE username LIKE 'bench-%%' AND id <> %(owner)s) others
"""

FILTERS: dict[str, dict[str, Any]] = {
    "no filter": {},
    "status failed": {"status": ["failed"]},
    "kind email.send": {"kind": ["email.send"]},
}


def _measure(owner: int, user_rows: int, samples: int) -> list[Row]:
    from django.db import connection, transaction

    from tasks import history

    rows: list[Row] = []
    cursors = _random_cursors(owner, samples)  # also opens the connection, not counted in the first page
    for name, fields in FILTERS.items():
        page = _pager(owner, history.Filter(**fields))
        ours = _times(page, cursors)
        with transaction.atomic(), connection.cursor() as cursor:
            for index in HISTORY_INDEXES:
                cursor.execute(f"DROP INDEX {index}")
            baseline = _times(page, cursors[:20])
            transaction.set_rollback(True)
        rows += _rows(f"history page, {user_rows:,}-job user, {name}", baseline, ours)
    search = _pager(owner, history.Filter(search="r4242"))
    found = _times(search, [None] * 20)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {SEARCH_INDEX}")
        unindexed = _times(search, [None] * 3)
        transaction.set_rollback(True)
    name = f"history search 'r4242', {user_rows:,}-job user"
    label = "p50 (baseline: no trigram index)"
    rows.append(Row(name, label, ms(percentile(unindexed, 0.5)), ms(percentile(found, 0.5))))
    return rows


def _pager(owner: int, wanted: Any) -> Callable[[str | None], Any]:
    """One history page of `owner`'s jobs matching `wanted`, fetched from `cursor` on."""
    from tasks import history

    def page(cursor: str | None) -> Any:
        return list(history.page_query(owner, wanted, 50, cursor))

    return page


def _random_cursors(owner: int, count: int) -> list[str | None]:
    """The first page, and cursors at random depths of the user's history."""
    from tasks import history
    from tasks.models import Job

    sample = Job.objects.raw(
        "SELECT id, created_at FROM tasks_job WHERE owner_id = %s ORDER BY random() LIMIT %s", [owner, count - 1]
    )
    cursors: list[str | None] = [None, *(history.make_cursor(job) for job in sample)]
    random.shuffle(cursors)
    return cursors


def _times(run: Callable[[str | None], Any], cursors: list[str | None]) -> list[float]:
    spent = []
    for cursor in cursors:
        started = time.perf_counter()
        run(cursor)
        spent.append(time.perf_counter() - started)
    return spent


def _rows(name: str, baseline: list[float], ours: list[float]) -> list[Row]:
    p99 = percentile(ours, 0.99)
    return [
        Row(name, "p50", ms(percentile(baseline, 0.5)), ms(percentile(ours, 0.5))),
        Row(name, "p99", ms(percentile(baseline, 0.99)), ms(p99), f"<= {TARGET_P99 * 1000:.0f} ms", p99 <= TARGET_P99),
    ]


if __name__ == "__main__":
    main()
