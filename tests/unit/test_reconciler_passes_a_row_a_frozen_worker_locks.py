"""A worker frozen inside one of its transactions (here a real process that locks its job's row with the
service's own settings and then SIGSTOPs itself) does not hold up the reconciler: its pass leaves that
job and repairs the others; once the server has ended the frozen session
(DATABASE_IDLE_IN_TRANSACTION_SECONDS), the next pass requeues the job too. PostgreSQL only: SQLite
has no row locks (docs/operations.md, "A frozen worker")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.db import connection
from pytest_django.fixtures import Settings

from tasks import broker, liveness, reconciler, services
from tasks.models import Job, JobStatus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("published", "sent_tasks"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only"),
]

IDLE_SECONDS = 3  # the frozen session's server-side limit, given to it through the service's settings

FREEZE = """
import os, signal, sys
import django
django.setup()
from django.db import connection, transaction
from tasks.models import Job
with transaction.atomic():
    Job.objects.select_for_update().get(pk=sys.argv[1])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        print(cursor.fetchone()[0], flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen inside the transaction, its row locked
"""


def database_url() -> str:
    """The test database, as the service's settings read it."""
    db = connection.settings_dict
    user = quote(db["USER"] or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def backend_state(pid: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def lost_job(user: User) -> Job:
    """A running job whose process is gone: the reconciler's to requeue."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1})
    worker = f"{liveness.this_worker().rpartition(':')[0]}:{dead.pid}"
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, worker=worker, deliveries=1)
    return job


def test_the_pass_leaves_the_locked_job_and_requeues_it_once_the_server_ends_the_frozen_session(
    user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.JOBS_RECONCILE_LOCK_WAIT_SECONDS = 0.2
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(), frozenset()))
    locked, other = lost_job(user), lost_job(user)
    env = {**os.environ, "DATABASE_URL": database_url(), "DATABASE_IDLE_IN_TRANSACTION_SECONDS": str(IDLE_SECONDS)}
    frozen = subprocess.Popen(
        [sys.executable, "-c", FREEZE, str(locked.pk)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert frozen.stdout is not None
        backend = int(frozen.stdout.readline())

        assert reconciler.reconcile().requeued_lost == 1
        assert Job.objects.get(pk=other.pk).status == JobStatus.QUEUED
        assert Job.objects.get(pk=locked.pk).status == JobStatus.RUNNING
        # The pass did not wait the frozen session out: it still holds the lock.
        assert backend_state(backend) == "idle in transaction"

        deadline = time.monotonic() + IDLE_SECONDS + 30
        while backend_state(backend) is not None:
            assert time.monotonic() < deadline, "the server never ended the frozen session"
            time.sleep(0.2)
        assert reconciler.reconcile().requeued_lost == 1
        assert Job.objects.get(pk=locked.pk).status == JobStatus.QUEUED
    finally:
        frozen.send_signal(signal.SIGKILL)  # a stopped process dies of SIGKILL too
        frozen.wait()


def test_the_reconciler_leaves_lock_waits_as_it_found_them_for_the_connection_s_next_user(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.JOBS_RECONCILE_LOCK_WAIT_SECONDS = 0.2
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(), frozenset()))
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        before = cursor.fetchone()
        reconciler.reconcile()
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == before
