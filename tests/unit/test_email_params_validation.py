"""email.send params: every bad field answers invalid_params under its own key, and nothing is queued."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from tasks import services
from tasks.errors import InvalidParams
from tasks.models import Job, JobStatus
from tests.unit.conftest import SentTasks

pytestmark = pytest.mark.django_db

GOOD: dict[str, Any] = {"to": ["ada@example.com", "bob@example.com"], "subject": "Hello", "body": "Hi there."}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to": []}, "to"),
        ({"to": [f"user{n}@example.com" for n in range(100_001)]}, "to"),
        ({"to": "ada@example.com"}, "to"),
        ({"to": ["ada@example.com", "not an address"]}, "to.1"),
        ({"to": ["ada@example.com", 7]}, "to.1"),
        ({"to": ["ada@example.com", "bob@example.com\r\nBcc: eve@example.com"]}, "to.1"),
        # validate_email alone accepts these separators; a header must not.
        ({"to": ['"a\x0bb"@example.com']}, "to.0"),
        ({"to": ["bob@exam\u2028ple.com"]}, "to.0"),
        ({"to": ["ada@example.com", "bob@example.com", "ADA@Example.com"]}, "to.2"),
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"subject": "Hi\nBcc: eve@example.com"}, "subject"),
        ({"subject": "Hi\rthere"}, "subject"),
        ({"subject": "Hi\u2029there"}, "subject"),
        ({"subject": 5}, "subject"),
        ({"body": "x" * 100_001}, "body"),
        ({"body": None}, "body"),
        ({"cc": ["eve@example.com"]}, "cc"),
    ],
)
def test_a_bad_field_is_named_in_details_and_nothing_is_stored(
    user: User, sent_tasks: SentTasks, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        services.submit(user, "r", "email.send", {**GOOD, **change})
    assert caught.value.code == "invalid_params"
    assert caught.value.details is not None and field in caught.value.details, caught.value.details
    assert not Job.objects.exists()
    assert not sent_tasks


def test_a_missing_field_is_named(user: User) -> None:
    with pytest.raises(InvalidParams) as caught:
        services.submit(user, "r", "email.send", {"to": ["ada@example.com"]})
    assert caught.value.details is not None
    assert set(caught.value.details) == {"subject", "body"}


def test_a_duplicate_address_names_the_address_it_repeats(user: User) -> None:
    params = {**GOOD, "to": ["ada@example.com", "bob@example.com", "Bob@EXAMPLE.com"]}
    with pytest.raises(InvalidParams) as caught:
        services.submit(user, "r", "email.send", params)
    assert caught.value.details == {"to.2": "Repeats to.1 (case is ignored)."}


def test_params_at_every_limit_are_accepted(user: User) -> None:
    params = {"to": [f"user{n}@example.com" for n in range(100)], "subject": "s" * 200, "body": "b" * 100_000}
    job, created = services.submit(user, "r", "email.send", params)
    assert created and job.status == JobStatus.QUEUED
    assert job.params == params


def test_an_empty_body_is_allowed(user: User) -> None:
    job, _ = services.submit(user, "r", "email.send", {**GOOD, "body": ""})
    assert job.params["body"] == ""
