"""job.retry's `resend_unknown` (docs/protocol.md): a boolean only, refused otherwise with bad_message naming
the field and echoing the request_id; `true` reaches the email kind's bookkeeping, absent or `false` does not."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks import emails, services
from tasks.models import DeliveryStatus, EmailDelivery, Job
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def failed_with_one_unknown_outcome(user: User) -> str:
    """An email job whose worker lost ada's answer: her row stays "sending", and the job failed."""
    job, _ = services.submit(user, "e", "email.send", {"to": ["ada@example.com"], "subject": "Hi", "body": "."})
    assert services.start(str(job.pk), job.celery_task_id) is not None
    EmailDelivery.objects.create(
        job=job, recipient="ada@example.com", status=DeliveryStatus.SENDING, attempt=1, message_id="<m>"
    )
    services.fail(str(job.pk), "smtp_unavailable", "The mail server is unavailable.")
    return str(job.pk)


@database_sync_to_async
def delivery_of(job_id: str) -> tuple[str, str]:
    row = EmailDelivery.objects.get(job_id=job_id)
    return row.status, row.error


@pytest.mark.parametrize("value", ["true", 1, 0, None, [True], {"yes": True}])
async def test_a_flag_that_is_not_a_boolean_is_a_bad_message(user: User, value: Any) -> None:
    job_id = await failed_with_one_unknown_outcome(user)
    async with connected(user) as (socket, _):
        reply = await socket.request(
            {"type": "job.retry", "job_id": job_id, "resend_unknown": value, "request_id": "r1"}
        )
        assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "bad_message", "r1")
        assert reply["details"] == {"resend_unknown": "Input should be a valid boolean"}
        assert await socket.nothing_more()  # nothing was retried
    assert await delivery_of(job_id) == (DeliveryStatus.SENDING, "")


async def test_the_failed_job_carries_its_count_of_unknown_outcomes(user: User) -> None:
    job_id = await failed_with_one_unknown_outcome(user)
    async with connected(user) as (_, hello):
        (job,) = hello["jobs"]
        assert (job["id"], job["status"], job["unknown_outcome"]) == (job_id, "failed", 1)


@pytest.mark.parametrize("flag", [{}, {"resend_unknown": False}], ids=["absent", "false"])
async def test_without_the_flag_the_unknown_outcome_stays_unknown(user: User, flag: dict[str, Any]) -> None:
    job_id = await failed_with_one_unknown_outcome(user)
    async with connected(user) as (socket, _):
        queued = await socket.request({"type": "job.retry", "job_id": job_id, **flag})
        assert (queued["type"], queued["job"]["attempt"], queued["job"]["unknown_outcome"]) == ("job.queued", 2, None)
    assert await delivery_of(job_id) == (DeliveryStatus.SENDING, "")


async def test_with_the_flag_the_retried_attempt_will_send_to_it_again(user: User) -> None:
    job_id = await failed_with_one_unknown_outcome(user)
    async with connected(user) as (socket, _):
        queued = await socket.request({"type": "job.retry", "job_id": job_id, "resend_unknown": True})
        assert (queued["type"], queued["job"]["attempt"]) == ("job.queued", 2)
    # Refused by an earlier attempt, as far as the new one goes: it claims and sends it (tasks.emails, 3).
    assert await delivery_of(job_id) == (DeliveryStatus.FAILED, emails.RELEASED)
    assert await database_sync_to_async(lambda: Job.objects.get(pk=job_id).unknown_outcome)() is None
