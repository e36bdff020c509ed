"""A running batch has no process of its own, so the reconciler never takes it for a lost job.

It once did (no worker, no heartbeat: "gone"), and put the batch back in the queue in the
middle of its run, with a task for a kind that does not exist; a batch bounced after its last
child had started stayed queued for ever.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tasks import broker, liveness, reconciler, services
from tasks.models import Job, JobStatus
from tests.unit.batching import children, make_batch
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def test_a_running_batch_stays_running_through_a_reconcile(
    user: User, sent_tasks: SentTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_batch(user, 2)
    first, second = children(batch)
    waiting = frozenset({first.celery_task_id, second.celery_task_id})
    monkeypatch.setattr(broker, "held", lambda: broker.Held(waiting, frozenset()))
    assert services.start(str(first.pk), first.celery_task_id) is not None
    alive = f"{liveness.this_worker().rpartition(':')[0]}:1"  # pid 1 outlives the test
    Job.objects.filter(pk=first.pk).update(worker=alive)
    running = Job.objects.get(pk=batch.pk)
    assert running.status == JobStatus.RUNNING
    assert liveness.is_gone(running.worker, running.heartbeat_at), "a batch has no process: this test needs that"
    sent_tasks.clear()

    assert reconciler.reconcile().requeued_lost == 0

    after = Job.objects.get(pk=batch.pk)
    assert (after.status, after.seq, after.celery_task_id) == (JobStatus.RUNNING, running.seq, "")
    assert sent_tasks == []


def test_requeue_lost_refuses_a_batch(user: User) -> None:
    batch = make_batch(user, 1)
    (child,) = children(batch)
    assert services.start(str(child.pk), child.celery_task_id) is not None
    assert services.requeue_lost(str(batch.pk)) is None
    assert Job.objects.get(pk=batch.pk).status == JobStatus.RUNNING
