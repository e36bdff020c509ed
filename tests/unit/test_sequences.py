"""Sequences run one step at a time; a failed step cancels the rest; {{ steps.N.result.PATH }} carries results on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks import batches, reconciler, runner, services
from tasks.errors import InvalidParams
from tasks.models import Job
from tests.unit.batching import children, run
from tests.unit.conftest import SentTasks

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = {"to": ["me@example.com"], "subject": "Summary"}


def sequence(user: User, *steps: tuple[str, dict[str, Any]]) -> Job:
    batch, _ = services.submit_batch(user, "seq-1", "Then", "sequence", list(steps))
    return batch


def countdown(steps: int = 1, **more: Any) -> tuple[str, dict[str, Any]]:
    return ("demo.countdown", {"steps": steps, **more})


def test_only_the_first_step_is_sent_and_each_success_sends_the_next(user: User, sent_tasks: SentTasks) -> None:
    batch = sequence(user, countdown(), countdown(), countdown())
    first, second, third = children(batch)
    assert [task["args"][0] for task in sent_tasks] == [str(first.pk)]
    assert second.celery_task_id == "" and third.celery_task_id == ""
    run(first)
    assert [task["args"][0] for task in sent_tasks] == [str(first.pk), str(second.pk)]
    run(second)
    run(third)
    batch.refresh_from_db()
    assert batch.status == "succeeded" and len(sent_tasks) == 3


def test_a_failed_step_cancels_the_steps_after_it_and_fails_the_batch(user: User, sent_tasks: SentTasks) -> None:
    batch = sequence(user, countdown(), countdown(), countdown())
    first, _, _ = children(batch)
    run(first, fail=True)
    assert [kid.status for kid in children(batch)] == ["failed", "cancelled", "cancelled"]
    batch.refresh_from_db()
    assert batch.status == "failed" and batch.error is not None and batch.error["code"] == "children_failed"
    assert len(sent_tasks) == 1


def test_cancelling_a_sequence_cancels_the_running_step_and_the_rest(user: User, sent_tasks: SentTasks) -> None:
    batch = sequence(user, countdown(), countdown(), countdown())
    first, second, _ = children(batch)
    run(first)
    second.refresh_from_db()
    services.start(str(second.pk), second.celery_task_id)
    services.cancel(user, str(batch.pk))
    assert [kid.status for kid in children(batch)] == ["succeeded", "cancelled", "cancelled"]
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    assert len(sent_tasks) == 2  # the third step was never sent


def test_retrying_a_sequence_sends_the_first_unfinished_step_and_the_rest_wait(
    user: User, sent_tasks: SentTasks
) -> None:
    batch = sequence(user, countdown(), countdown(), countdown())
    first, second, third = children(batch)
    run(first)
    run(children(batch)[1], fail=True)
    services.retry(user, str(batch.pk))
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, third.status) == ("queued", "queued")
    assert sent_tasks[-1]["args"] == [str(second.pk)] and third.celery_task_id == ""
    run(second)
    assert sent_tasks[-1]["args"] == [str(third.pk)]


def test_a_later_step_gets_an_earlier_steps_result_as_text(user: User) -> None:
    body = "Counted {{ steps.0.result.steps }} steps; all: {{steps.0.result}}"
    batch = sequence(user, countdown(3), ("email.send", {**EMAIL, "body": body}))
    first, second = children(batch)
    run(first, result={"steps": 3, "items": [{"name": "a"}]})
    second.refresh_from_db()
    params = batches.substitute(second)
    counted, everything = params["body"].split("; all: ")
    assert counted == "Counted 3 steps"
    assert json.loads(everything) == {"steps": 3, "items": [{"name": "a"}]}  # JSON (key order is the database's)
    assert second.params["body"] == body  # the stored params keep the template, for a retry
    third = {**EMAIL, "body": "{{ steps.0.result.items.0.name }}"}
    assert batches._replaced(third, {0: {"items": [{"name": "a"}]}}, "")["body"] == "a"


def test_a_path_that_does_not_resolve_fails_the_step_with_invalid_params(user: User) -> None:
    batch = sequence(user, countdown(), ("email.send", {**EMAIL, "body": "{{ steps.0.result.nothing }}"}))
    first, second = children(batch)
    run(first, result={"steps": 1})
    second.refresh_from_db()
    with pytest.raises(InvalidParams):
        batches.substitute(second)
    runner.run_job(str(second.pk), second.celery_task_id)
    second.refresh_from_db()
    assert second.status == "failed" and second.error is not None
    assert second.error["code"] == "invalid_params" and "body" in second.error["message"]
    batch.refresh_from_db()
    assert batch.status == "failed"


@pytest.mark.parametrize(
    ("mode", "body", "field"),
    [
        ("sequence", "{{ steps.1.result.x }}", "jobs.1.body"),  # not an earlier step
        ("sequence", "{{ anything else }}", "jobs.1.body"),
        ("parallel", "{{ steps.0.result.x }}", "jobs.1.body"),  # a parallel batch has no order
    ],
)
def test_a_step_may_only_refer_to_an_earlier_step(user: User, mode: str, body: str, field: str) -> None:
    with pytest.raises(InvalidParams) as refused:
        services.submit_batch(user, "bad", "", mode, [countdown(), ("email.send", {**EMAIL, "body": body})])
    assert list(refused.value.details or {}) == [field]
    assert not Job.objects.exists()


def test_the_other_fields_of_a_templated_step_are_still_checked_at_submit(user: User) -> None:
    step = ("email.send", {"to": ["not an address"], "subject": "x", "body": "{{ steps.0.result.steps }}"})
    with pytest.raises(InvalidParams) as refused:
        services.submit_batch(user, "bad", "", "sequence", [countdown(), step])
    assert list(refused.value.details or {}) == ["jobs.1.to.0"]


def test_the_reconciler_hands_out_a_step_whose_turn_came_while_nobody_sent_it(
    user: User, sent_tasks: SentTasks
) -> None:
    batch = sequence(user, countdown(), countdown())
    first, second = children(batch)
    run(first)
    # As if the process had died between the step's commit and handing out the next one.
    Job.objects.filter(pk=second.pk).update(celery_task_id="")
    sent_tasks.clear()
    reconciler.reconcile()
    second.refresh_from_db()
    assert second.celery_task_id and sent_tasks[-1]["args"] == [str(second.pk)]
