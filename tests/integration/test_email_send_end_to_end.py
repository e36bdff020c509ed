"""email.send with real processes: WebSocket -> Daphne -> Celery worker -> a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from django.contrib.auth.models import User

from tests.factories import PASSWORD
from tests.integration.client import Message, is_terminal_event, jobs_client, login
from tests.integration.conftest import LiveStack
from tests.smtp import USER_UNKNOWN, SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def addresses(*names: str) -> list[str]:
    """Addresses no other test uses: the SMTP server lives for the whole session."""
    tag = uuid.uuid4().hex[:8]
    return [f"{name}.{tag}@example.com" for name in names]


async def send_over_the_socket(live_stack: LiveStack, user: User, to: list[str]) -> list[Message]:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        assert "email.send" in client.hello["kinds"]
        params = {"to": to, "subject": "The report", "body": "It is ready.\n"}
        job = await client.submit("email.send", params)
        return await client.receive_until(is_terminal_event(job["id"]))


async def test_every_recipient_gets_exactly_one_message_with_progress_on_the_way(
    live_stack: LiveStack, user: User, smtp_server: SmtpServer
) -> None:
    to = addresses("ada", "bob", "cy")
    events = await send_over_the_socket(live_stack, user, to)

    assert [event["type"] for event in events[:2]] == ["job.queued", "job.started"]
    finished = events[-1]
    assert finished["type"] == "job.succeeded", finished
    assert finished["job"]["result"] == {"sent": 3, "failed": []}
    assert finished["job"]["params"]["body_length"] == len("It is ready.\n")
    # Progress is coalesced, so how many frames arrive varies; what they say does not.
    progress = [event["progress"] for event in events if event["type"] == "job.progress"]
    assert progress and {p["stage"] for p in progress} == {"sending"}
    currents = [p["current"] for p in progress]
    assert currents == sorted(currents) and {p["total"] for p in progress} == {3}
    final = finished["job"]["progress"]
    assert (final["current"], final["total"], final["message"]) == (3, 3, "3 of 3 sent")
    for address in to:
        (received,) = smtp_server.to(address)
        assert received.message["To"] == address
        assert received.message["Subject"] == "The report"
        assert received.message["Message-ID"].startswith(f"<{finished['job']['id']}.")
        assert received.body == "It is ready.\n"


async def test_a_refused_recipient_is_reported_and_the_others_are_sent(
    live_stack: LiveStack, user: User, smtp_server: SmtpServer
) -> None:
    to = addresses("ada", "nobody", "cy")
    smtp_server.refuse(to[1])
    events = await send_over_the_socket(live_stack, user, to)

    finished = events[-1]
    assert finished["type"] == "job.succeeded", finished
    assert finished["job"]["result"] == {"sent": 2, "failed": [{"to": to[1], "error": USER_UNKNOWN}]}
    assert [len(smtp_server.to(address)) for address in to] == [1, 0, 1]
