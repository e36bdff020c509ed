"""A batch's counters move with each child, and its status follows the rules of protocol 1.1 Batches."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from notifications.models import Notification
from tasks import batches, reconciler, services
from tasks.errors import RateLimited
from tasks.models import Batch, Job
from tests.unit.batching import children, counts, make_batch, run
from tests.unit.conftest import SentTasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_parallel_batch_is_one_job_whose_children_each_get_a_task(user: User, sent_tasks: SentTasks) -> None:
    batch = make_batch(user, 3)
    batch.refresh_from_db()
    assert (batch.kind, batch.status, batch.seq) == ("batch", "queued", 2)
    assert batch.params == {"title": "A batch", "mode": "parallel", "size": 3}
    kids = children(batch)
    assert [kid.position for kid in kids] == [0, 1, 2]
    assert {task["args"][0] for task in sent_tasks} == {str(kid.pk) for kid in kids}
    assert counts(batch) == {"total": 3, "queued": 3, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}


def test_the_batch_runs_with_its_first_child_and_succeeds_with_its_last(user: User) -> None:
    batch = make_batch(user, 2)
    first, second = children(batch)
    run(first)
    batch.refresh_from_db()
    assert batch.status == "running"
    assert counts(batch)["succeeded"] == 1 and counts(batch)["queued"] == 1
    run(second)
    batch.refresh_from_db()
    assert batch.status == "succeeded" and batch.error is None
    assert batch.progress["current"] == 2 and batch.progress["total"] == 2
    assert counts(batch) == {"total": 2, "queued": 0, "running": 0, "succeeded": 2, "failed": 0, "cancelled": 0}
    # One notification, of the batch: its children tell nobody.
    assert list(Notification.objects.filter(user=user).values_list("job_id", "text")) == [
        (batch.pk, "Batch 'A batch' succeeded.")
    ]


def test_a_failed_child_fails_the_batch_with_children_failed_once_all_finished(user: User) -> None:
    batch = make_batch(user, 3)
    one, two, three = children(batch)
    run(one, fail=True)
    batch.refresh_from_db()
    assert batch.status == "running"
    run(two)
    run(three)
    batch.refresh_from_db()
    assert batch.status == "failed"
    assert batch.error == {
        "code": "children_failed",
        "message": "1 of 3 jobs failed, 0 were cancelled and 2 succeeded.",
    }


def test_cancelling_a_batch_cancels_its_unfinished_children_and_the_batch(user: User, sent_tasks: SentTasks) -> None:
    batch = make_batch(user, 3)
    done, running, waiting = children(batch)
    run(done)
    running.refresh_from_db()
    services.start(str(running.pk), running.celery_task_id)
    services.cancel(user, str(batch.pk))
    statuses = [kid.status for kid in children(batch)]
    assert statuses == ["succeeded", "cancelled", "cancelled"]
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    assert set(sent_tasks.revoked) == {running.celery_task_id, waiting.celery_task_id}


def test_retrying_a_batch_retries_only_its_failed_and_cancelled_children(user: User, sent_tasks: SentTasks) -> None:
    batch = make_batch(user, 3)
    good, bad, _ = children(batch)
    run(good)
    run(bad, fail=True)
    services.cancel(user, str(batch.pk))
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    sent_before = len(sent_tasks)
    services.retry(user, str(batch.pk))
    batch.refresh_from_db()
    assert (batch.status, batch.attempt) == ("queued", 2)
    kids = children(batch)
    assert [(kid.status, kid.attempt) for kid in kids] == [("succeeded", 1), ("queued", 2), ("queued", 2)]
    assert [task["args"][0] for task in sent_tasks[sent_before:]] == [str(kids[1].pk), str(kids[2].pk)]
    run(kids[1])
    run(kids[2])
    batch.refresh_from_db()
    assert batch.status == "succeeded"


def test_the_counters_equal_a_recount_after_every_kind_of_change(user: User) -> None:
    batch = make_batch(user, 6)
    kids = children(batch)
    run(kids[0])
    run(kids[1], fail=True)
    services.cancel(user, str(kids[2].pk))
    services.start(str(kids[3].pk), kids[3].celery_task_id)
    true = batches.recount(batch.pk)
    assert {k: v for k, v in counts(batch).items() if k != "total"} == true


def test_the_reconciler_repairs_counters_that_disagree_and_finishes_the_batch(
    user: User, caplog: pytest.LogCaptureFixture
) -> None:
    batch = make_batch(user, 2)
    for kid in children(batch):
        run(kid)
    # As if a counter update had been lost: the batch looks unfinished.
    Batch.objects.filter(pk=batch.pk).update(succeeded=1, queued=1)
    Job.objects.filter(pk=batch.pk).update(status="running", finished_at=None)
    with caplog.at_level(logging.WARNING, logger="tasks.batches"):
        result = reconciler.reconcile()
    assert result.batches_repaired == 1
    assert "disagreed with a recount" in caplog.text
    assert counts(batch)["succeeded"] == 2
    batch.refresh_from_db()
    assert batch.status == "succeeded"
    assert reconciler.reconcile().batches_repaired == 0


def test_a_batch_counts_as_one_active_job_against_the_cap(user: User, settings: Settings) -> None:
    settings.JOBS_MAX_ACTIVE_PER_USER = 2
    make_batch(user, 5, request_id="big")
    make_batch(user, 5, request_id="second")
    with pytest.raises(RateLimited):
        make_batch(user, 1, request_id="third")
