"""While a batch's tasks are being handed to the broker (seconds, for 10,000), the reconciler does not take
the children not sent yet for lost messages: the hand-out keeps them fresh. Once it has stopped, stale ones
are the reconciler's again."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from celery_app import app as celery_app
from tasks import batches, broker, reconciler, services
from tasks.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def test_the_reconciler_resends_nothing_of_a_batch_being_handed_out(
    user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.JOBS_REQUEUE_AFTER_SECONDS = 0.2
    batch, _ = services.submit_batch(
        user, "b", "Slow", "parallel", [("demo.countdown", {"steps": 1})] * 6, start_later=True
    )
    sent: list[str] = []
    resent: list[int] = []
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(sent), frozenset()))

    def slow_send(name: str, args: list[Any], task_id: str, **options: Any) -> None:
        sent.append(task_id)
        time.sleep(0.15)  # a slow broker: the hand-out takes longer than JOBS_REQUEUE_AFTER_SECONDS
        if len(sent) in (3, 5):
            resent.append(reconciler.reconcile().resent)

    monkeypatch.setattr(celery_app, "send_task", slow_send)
    assert batches.send_children(batch.pk) == 6
    assert resent == [0, 0]
    assert len(sent) == 6


def test_children_left_unsent_by_a_hand_out_that_died_are_resent(
    user: User, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.JOBS_REQUEUE_AFTER_SECONDS = 1
    batch, _ = services.submit_batch(
        user, "b", "Died", "parallel", [("demo.countdown", {"steps": 1})] * 3, start_later=True
    )
    Job.objects.filter(parent=batch).update(updated_at=timezone.now() - timedelta(seconds=5))
    monkeypatch.setattr(broker, "held", lambda: broker.Held(frozenset(), frozenset()))
    assert reconciler.reconcile().resent == 3
