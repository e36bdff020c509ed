"""Retention deletes a finished batch with its children, and never a child alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tasks import housekeeping
from tasks.models import Batch, Job, JobEvent
from tests.unit.batching import children, make_batch, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_old_batch_goes_with_its_children_and_their_events(user: User) -> None:
    batch = make_batch(user, 3)
    for kid in children(batch):
        run(kid)
    old = timezone.now() - timedelta(days=40)
    Job.objects.filter(pk=batch.pk).update(finished_at=old)
    purged = housekeeping.purge_finished_jobs(timezone.now(), retention_days=30)
    assert purged.jobs == 1
    assert not Job.objects.exists() and not Batch.objects.exists() and not JobEvent.objects.exists()


def test_old_children_of_a_recent_batch_stay(user: User) -> None:
    batch = make_batch(user, 2)
    for kid in children(batch):
        run(kid)
    Job.objects.filter(parent=batch).update(finished_at=timezone.now() - timedelta(days=40))
    assert housekeeping.purge_finished_jobs(timezone.now(), retention_days=30).jobs == 0
    assert Job.objects.filter(parent=batch).count() == 2
