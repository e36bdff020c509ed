"""A queued job whose task was delivered to a worker that no longer holds it is sent again, under a
new task id; one a live worker holds, or when the workers cannot be asked, is left alone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from tasks import broker, reconciler, services
from tasks.models import Job, JobStatus
from tests.conftest import Published
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


@pytest.fixture
def delivered(user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks) -> Job:
    """A job queued a while ago whose task sits in the broker's unacked set."""
    settings.JOBS_REQUEUE_AFTER_SECONDS = 1
    job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1})
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(), frozenset({job.celery_task_id})))
    sent_tasks.clear()
    return Job.objects.get(pk=job.pk)


def workers_hold(monkeypatch: pytest.MonkeyPatch, held: set[str] | None) -> None:
    monkeypatch.setattr(broker, "known_to_workers", lambda task_ids: held)


def test_a_task_no_worker_holds_is_sent_again_as_a_new_task(
    delivered: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks, published: Published
) -> None:
    workers_hold(monkeypatch, set())
    outcome = reconciler.reconcile()
    assert (outcome.resent, outcome.resent_orphaned) == (0, 1)
    job = Job.objects.get(pk=delivered.pk)
    assert job.status == JobStatus.QUEUED
    assert job.celery_task_id not in ("", delivered.celery_task_id)
    assert [task["task_id"] for task in sent_tasks] == [job.celery_task_id]
    assert published.types()[-1] == "job.queued"


def test_a_task_a_live_worker_holds_is_left_alone(
    delivered: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks
) -> None:
    workers_hold(monkeypatch, {delivered.celery_task_id})
    assert reconciler.reconcile().resent_orphaned == 0
    assert Job.objects.get(pk=delivered.pk).celery_task_id == delivered.celery_task_id
    assert sent_tasks == []


def test_nothing_is_sent_when_the_workers_cannot_be_asked(
    delivered: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks
) -> None:
    workers_hold(monkeypatch, None)
    assert reconciler.reconcile().resent_orphaned == 0
    assert sent_tasks == []


def test_a_job_that_moved_on_since_is_not_sent_again(delivered: Job, sent_tasks: SentTasks) -> None:
    """The reconciler read the job, then its worker started it: the resend checks the task id under the lock."""
    Job.objects.filter(pk=delivered.pk).update(celery_task_id="started-meanwhile")
    assert services.resend_orphaned(delivered.pk, delivered.celery_task_id) is None
    assert sent_tasks == []
