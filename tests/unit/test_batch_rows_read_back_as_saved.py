"""A batch's children and their events, inserted in one stream (tasks.bulk), read back exactly as rows
saved one by one through the ORM would: defaults, JSON, times, ids and the timeline."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tasks import history, services
from tasks.models import Job, JobEvent, empty_progress

pytestmark = pytest.mark.django_db(transaction=True)


def test_children_read_back_with_their_values_and_defaults(user: User) -> None:
    params = {"steps": 3, "interval_ms": 0, "log_progress": False}
    batch, _ = services.submit_batch(user, "rows", "Rows", "parallel", [("demo.countdown", params)] * 3)
    children = list(Job.objects.filter(parent=batch).order_by("position"))
    assert [child.position for child in children] == [0, 1, 2]
    for child in children:
        assert child.params == params and isinstance(child.params, dict)
        assert (child.status, child.attempt, child.seq, child.deliveries) == ("queued", 1, 2, 0)
        assert child.progress == empty_progress() and child.artifacts == []
        assert child.result is None and child.error is None and child.started_at is None
        assert child.owner_id == user.pk and child.kind == "demo.countdown" and child.worker == ""
        assert child.request_id == f"batch:{batch.pk}:{child.position}"
        assert str(child.pk) in child.search_text and child.updated_at is not None
        assert child.created_at < batch.created_at and child.celery_task_id
        events = list(JobEvent.objects.filter(job=child).order_by("seq").values_list("seq", "event", "note"))
        assert events == [(1, "job.accepted", ""), (2, "job.queued", "")]
    assert children[0].created_at > children[1].created_at > children[2].created_at
    # Found by a search, as any job is.
    found = history.page(user.pk, history.Filter(parent_id=batch.pk, search=str(children[1].pk)[:8]))
    assert [job.pk for job in found.jobs] == [children[1].pk]
