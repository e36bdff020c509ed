"""On RabbitMQ, which counts a queue's messages but cannot list them, a queued job's task is sent again only
when its queue is empty and no live worker holds it; never while it may still wait, or be held, somewhere."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from tasks import broker, kinds, reconciler, services
from tasks.models import Job
from tests.unit.conftest import SentTasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


@pytest.fixture
def queued(user: User, settings: Settings, sent_tasks: SentTasks) -> Job:
    """A demo.countdown job queued long enough ago for the reconciler to look at it."""
    settings.JOBS_REQUEUE_AFTER_SECONDS = 1
    job, _ = services.submit(user, uuid.uuid4().hex, "demo.countdown", {"steps": 1})
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    sent_tasks.clear()
    return Job.objects.get(pk=job.pk)


def rabbitmq_holds(monkeypatch: pytest.MonkeyPatch, non_empty: set[str], workers: set[str] | None) -> None:
    """RabbitMQ's answer: these queues hold messages; the live workers hold these task ids (None: no answer)."""
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(), frozenset(), frozenset(non_empty), False))
    monkeypatch.setattr(broker, "known_to_workers", lambda task_ids: workers)


def test_a_task_in_an_empty_queue_that_no_worker_holds_is_sent_again(
    queued: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks
) -> None:
    other_queue = next(name for name in {"default", *kinds.queues()} if name != kinds.get("demo.countdown").queue)
    rabbitmq_holds(monkeypatch, non_empty={other_queue}, workers=set())
    assert reconciler.reconcile().resent == 1
    assert [task["task_id"] for task in sent_tasks] == [queued.celery_task_id]


def test_a_task_whose_queue_holds_messages_may_be_one_of_them_and_is_left_alone(
    queued: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks
) -> None:
    rabbitmq_holds(monkeypatch, non_empty={kinds.get("demo.countdown").queue}, workers=set())
    assert reconciler.reconcile().resent == 0
    assert sent_tasks == []


def test_a_task_a_live_worker_holds_is_left_alone(
    queued: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks
) -> None:
    rabbitmq_holds(monkeypatch, non_empty=set(), workers={queued.celery_task_id})
    assert reconciler.reconcile().resent == 0
    assert sent_tasks == []


def test_nothing_is_sent_when_the_workers_cannot_be_asked(
    queued: Job, monkeypatch: pytest.MonkeyPatch, sent_tasks: SentTasks
) -> None:
    rabbitmq_holds(monkeypatch, non_empty=set(), workers=None)
    assert reconciler.reconcile().resent == 0
    assert sent_tasks == []
