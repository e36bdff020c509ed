"""An SMTP server that stops answering in the middle of an email.send job (it takes a message's data
and never says 250): the worker gives up after EMAIL_TIMEOUT, the job ends failed, and each recipient
has the outcome it should: those before are sent, the one whose answer never came has an unknown
outcome, those after were not tried. A retry, once the server answers again, sends to those not tried
and to no one else: no recipient receives the message twice.

The stack's own workers leave the default queue (where email.send goes) to a worker of the test's
with a short EMAIL_TIMEOUT; it runs the reconciler meanwhile too."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks import emails
from tasks.models import EmailDelivery, JobStatus
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import queue_left_alone, socket_of, submit, wait_for_job, worker_of_own
from tests.smtp import RecordingHandler

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

RECIPIENTS = [f"stalled{n}@example.com" for n in range(6)]  # addresses no other test sends to
ANSWERED = 3  # messages the server answers before it stops
NAME = "email-timeout-worker"


class Stalling:
    """Makes the server take every message's data from the `after`-th on, and never answer it, while set."""

    def __init__(self, handler: RecordingHandler, after: int) -> None:
        self.handler = handler
        self.after = len(handler.received) + after
        self.released = threading.Event()  # set by the test's thread; the server runs in a thread of its own
        self.original = handler.handle_DATA

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self.original(server, session, envelope)
        if len(self.handler.received) > self.after:
            await asyncio.to_thread(self.released.wait)  # the client gives up first
        return reply


@pytest.fixture
def stalling(fault_stack: FaultStack) -> Iterator[Stalling]:
    handler = fault_stack.smtp.handler
    stall = Stalling(handler, ANSWERED)
    handler.handle_DATA = stall.handle_DATA  # type: ignore[method-assign]
    try:
        yield stall
    finally:
        stall.released.set()
        del handler.handle_DATA  # the class's own again


def outcomes(job_id: str) -> dict[str, tuple[str, str]]:
    return {row.recipient: (row.status, row.error) for row in EmailDelivery.objects.filter(job_id=job_id)}


async def test_a_server_that_stops_answering_ends_the_job_and_a_retry_sends_no_one_twice(
    fault_stack: FaultStack, stalling: Stalling, user: User
) -> None:
    smtp = fault_stack.smtp
    log = fault_stack.logs / f"{NAME}.log"
    with (
        queue_left_alone(fault_stack.redis_url, "default"),
        worker_of_own(fault_stack.env, log, NAME, "default", fault_stack.worker_answers, EMAIL_TIMEOUT="2"),
    ):
        async with socket_of(user, fault_stack.ws_url) as (socket, _):
            job_id = await submit(socket, "email.send", {"to": RECIPIENTS, "subject": "Stall", "body": "Once."})
            first = await wait_for_job(job_id, lambda job: job.is_finished)
            assert first.status == JobStatus.FAILED and first.error is not None
            assert first.error["code"] == "smtp_unavailable", first.error
            assert "did not answer in time" in first.error["message"], first.error
            stalled = RECIPIENTS[ANSWERED]
            assert await database_sync_to_async(outcomes)(job_id) == {
                **{address: ("sent", "") for address in RECIPIENTS[:ANSWERED]},
                stalled: ("sending", ""),  # claimed, its answer never came: unknown
            }  # and no row for those after it: never tried
            assert [received.rcpt_tos for received in smtp.received[-ANSWERED - 1 :]] == [
                [address] for address in RECIPIENTS[: ANSWERED + 1]
            ]

            stalling.after = sys.maxsize  # the server answers again
            await socket.send(json.dumps({"type": "job.retry", "request_id": "again", "job_id": job_id}))
            second = await wait_for_job(job_id, lambda job: job.attempt == 2 and job.is_finished)
    # Each address got the message once: the stalled one only from the first attempt, never again.
    assert {address: len(smtp.to(address)) for address in RECIPIENTS} == dict.fromkeys(RECIPIENTS, 1)
    assert second.status == JobStatus.SUCCEEDED, second.error
    assert second.result == {"sent": len(RECIPIENTS) - 1, "failed": [{"to": stalled, "error": emails.UNKNOWN_OUTCOME}]}
    rows = await database_sync_to_async(outcomes)(job_id)
    assert {address: status for address, (status, _) in rows.items()} == {
        **{address: "sent" for address in RECIPIENTS if address != stalled},
        stalled: "sending",
    }
