"""patches.prepared.Writes: the hot INSERTs and UPDATEs built once write what the ORM's save() writes.

Each write is compared with the row the ORM reads back, on the database the
suite runs on (SQLite, or PostgreSQL in CI): JSON, datetimes, NULLs, foreign
keys and `auto_now` columns included. A transition must compile no INSERT or
UPDATE at all, and no receiver may listen to the save signals these writes do
not send.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError
from django.db.models import Model
from django.db.models.signals import post_save, pre_save
from django.db.models.sql.compiler import SQLInsertCompiler, SQLUpdateCompiler
from django.utils import timezone

from notifications.models import Level, Notification, NotificationKind
from patches.prepared import Writes
from tasks import services, transitions
from tasks.models import BATCH_KIND, Batch, BatchMode, Job, JobEvent, JobStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

_request_ids = itertools.count()


def _row(model: type[Model], pk: Any) -> dict[str, Any]:
    """Every concrete column of the row, as the ORM reads it back."""
    names = [field.attname for field in model._meta.concrete_fields]
    return dict(model._default_manager.filter(pk=pk).values(*names).get())


def _new_job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "owner": UserFactory.create(),
        "kind": "demo.countdown",
        "params": {"steps": 3, "nested": {"list": [1, "two", None]}},
        "request_id": f"req-{next(_request_ids)}",
        "status": JobStatus.QUEUED,
        "celery_task_id": str(uuid.uuid4()),
        **fields,
    }
    return Job(**values)


def _without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in names}


def test_create_writes_the_row_save_writes() -> None:
    made_by_orm, made_here = _new_job(), _new_job()
    made_here.owner = made_by_orm.owner
    made_by_orm.save(force_insert=True)
    Writes(Job).create(made_here)

    orm, here = _row(Job, made_by_orm.pk), _row(Job, made_here.pk)
    assert _without(here, "id", "request_id", "celery_task_id", "created_at", "updated_at") == _without(
        orm, "id", "request_id", "celery_task_id", "created_at", "updated_at"
    )
    # auto_now_add and auto_now were set on the instance, as save() sets them, and stored as set.
    assert made_here.created_at is not None and here["created_at"] == made_here.created_at
    assert here["updated_at"] == made_here.updated_at
    assert here["request_id"] == made_here.request_id and here["params"] == made_here.params
    assert made_here._state.adding is False


def test_create_reads_back_a_primary_key_the_database_assigns() -> None:
    user = UserFactory.create()
    kind, level = NotificationKind.JOB_SUCCEEDED, Level.INFO
    made = [Notification(user=user, kind=kind, level=level, text=f"n{i}") for i in range(3)]
    for notification in made:
        Writes(Notification).create(notification)

    assert len({notification.pk for notification in made}) == 3
    for notification in made:
        row = _row(Notification, notification.pk)
        assert (row["user_id"], row["text"], row["read_at"]) == (user.pk, notification.text, None)
        assert row["created_at"] == notification.created_at


def test_update_writes_only_the_named_columns_and_auto_now() -> None:
    job = _new_job()
    job.save(force_insert=True)
    before = _row(Job, job.pk)
    started = timezone.now() - timedelta(seconds=5)

    job.status = JobStatus.RUNNING
    job.started_at = started
    job.progress = {"current": 2, "total": 3, "message": "é"}
    job.result = None
    job.kind = "changed but not named"
    Writes(Job).update(job, ["status", "started_at", "progress", "result", "updated_at"])

    after = _row(Job, job.pk)
    assert (after["status"], after["started_at"], after["progress"]) == (JobStatus.RUNNING, started, job.progress)
    assert after["kind"] == before["kind"] == "demo.countdown"  # not named: not written
    assert after["updated_at"] == job.updated_at > before["updated_at"]
    unchanged = ("status", "started_at", "progress", "updated_at")
    assert _without(after, *unchanged) == _without(before, *unchanged)


def test_update_of_a_missing_row_raises() -> None:
    job = _new_job()
    with pytest.raises(DatabaseError, match="no row"):
        Writes(Job).update(job, ["status"])


def test_insert_writes_several_rows_in_one_statement() -> None:
    job = _new_job()
    job.save(force_insert=True)
    at = timezone.now()
    rows = [(job.pk, 7, "job.started", at, ""), (job.pk, 8, "job.failed", at, "internal")]

    Writes(JobEvent).insert(("job", "seq", "event", "at", "note"), rows)

    stored = list(JobEvent.objects.filter(job=job).order_by("seq").values_list("job_id", "seq", "event", "at", "note"))
    assert stored == rows


def _batch(**counts: int) -> Batch:
    parent = _new_job(kind=BATCH_KIND)
    parent.save(force_insert=True)
    return Batch.objects.create(job=parent, mode=BatchMode.PARALLEL, total=5, **counts)


def test_add_moves_counters_and_returns_the_row_as_the_orm_reads_it() -> None:
    batch = _batch(queued=3, running=1)

    returned = Writes(Batch).add(batch.pk, {"queued": -1, "running": +1})
    again = Writes(Batch).add(batch.pk, {"running": -1, "succeeded": +1})

    stored = Batch.objects.get(pk=batch.pk)
    assert (stored.queued, stored.running, stored.succeeded) == (2, 1, 1)
    assert (returned.queued, returned.running, returned.succeeded) == (2, 2, 0)  # the row after its own change
    assert _row(Batch, again.pk) == {
        field.attname: getattr(again, field.attname) for field in Batch._meta.concrete_fields
    }
    # converted as the ORM converts: SQLite gives 0 for a boolean, which must come back False, not 0
    assert again.cancel_requested is False and again.mode == BatchMode.PARALLEL
    assert again._state.adding is False and again._state.db == "default"


def test_add_of_a_missing_row_raises_and_of_a_non_integer_column_is_refused() -> None:
    with pytest.raises(DatabaseError, match="no row"):
        Writes(Batch).add(uuid.uuid4(), {"queued": 1})
    with pytest.raises(ValueError, match="integer columns"):
        Writes(Batch).add(_batch().pk, {"mode": 1})


@contextmanager
def _compiles() -> Iterator[list[str]]:
    """The INSERT and UPDATE statements the ORM compiles inside the block."""
    compiled: list[str] = []
    insert_as_sql, update_as_sql = SQLInsertCompiler.as_sql, SQLUpdateCompiler.as_sql

    def insert(self: SQLInsertCompiler, *args: Any, **kwargs: Any) -> Any:
        compiled.append(f"INSERT {self.query.get_meta().label}")
        return insert_as_sql(self, *args, **kwargs)

    def update(self: SQLUpdateCompiler, *args: Any, **kwargs: Any) -> Any:
        compiled.append(f"UPDATE {self.query.get_meta().label}")
        return update_as_sql(self, *args, **kwargs)

    SQLInsertCompiler.as_sql = insert  # type: ignore[method-assign]
    SQLUpdateCompiler.as_sql = update  # type: ignore[method-assign]
    try:
        yield compiled
    finally:
        SQLInsertCompiler.as_sql = insert_as_sql  # type: ignore[method-assign]
        SQLUpdateCompiler.as_sql = update_as_sql  # type: ignore[method-assign]


def test_a_job_from_submit_to_its_notification_compiles_no_write() -> None:
    """The submit's insert, the claim and the final state with its notification: every write is prepared."""
    owner = UserFactory.create()
    with _compiles() as compiles:
        job, created = services.submit(owner, "compile-check", "demo.countdown", {"steps": 1}, start_later=True)
        assert created
        assert services.start(str(job.pk), job.celery_task_id) is not None
        assert services.succeed(str(job.pk), {"counted": 1}, None) is not None

    assert compiles == []
    assert list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", "event")) == [
        (1, "job.accepted"),
        (2, "job.queued"),
        (3, "job.started"),
        (4, "job.succeeded"),
    ]
    assert Notification.objects.filter(job=job, kind=NotificationKind.JOB_SUCCEEDED).count() == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize("model", [Job, JobEvent, Notification])
def test_no_receiver_listens_to_the_saves_these_writes_skip(model: type[Model]) -> None:
    assert not pre_save.has_listeners(model)
    assert not post_save.has_listeners(model)
    assert transitions  # the module that writes Job and JobEvent rows this way is loaded, with its receivers
