"""Job events show an email.send job's recipients and subject, and only the start of its body."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tasks import services
from tasks.models import Job
from tests.conftest import Published

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_carry_the_first_200_characters_of_the_body_and_its_length(user: User, published: Published) -> None:
    body = "".join(f"line {n}\n" for n in range(1000))
    params = {"to": ["ada@example.com", "bob@example.com"], "subject": "Quarterly report", "body": body}
    job, _ = services.submit(user, "r", "email.send", params)

    (queued,) = [message for _, message in published if message["type"] == "job.queued"]
    assert queued["job"]["params"] == {
        "to": ["ada@example.com", "bob@example.com"],
        "subject": "Quarterly report",
        "body": body[:200],
        "body_length": len(body),
    }
    assert Job.objects.get(pk=job.pk).params["body"] == body  # the worker still sends all of it


def test_a_short_body_is_shown_whole(user: User, published: Published) -> None:
    services.submit(user, "r", "email.send", {"to": ["ada@example.com"], "subject": "Hi", "body": "See you."})
    (queued,) = [message for _, message in published if message["type"] == "job.queued"]
    assert queued["job"]["params"]["body"] == "See you."
    assert queued["job"]["params"]["body_length"] == 8
