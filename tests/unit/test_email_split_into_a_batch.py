"""email.send past 100 recipients (up to 100,000, in `to` or an uploaded file) becomes a parallel batch of
jobs of 100, each recipient in exactly one of them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tasks import services
from tasks.errors import InvalidParams
from tasks.models import Batch, Job
from tests.fixtures.uploads import stored_upload

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = {"subject": "News", "body": "Hello."}


def addresses(n: int) -> list[str]:
    return [f"reader{i}@example.com" for i in range(n)]


def children_to(batch: Job) -> list[list[str]]:
    return [child.params["to"] for child in Job.objects.filter(parent=batch).order_by("position")]


def test_250_recipients_make_a_batch_of_three_jobs_each_address_in_one(user: User) -> None:
    batch, created = services.submit(user, "news-1", "email.send", {"to": addresses(250), **MESSAGE})
    assert created and batch.kind == "batch"
    assert batch.params == {"title": "Email 'News' to 250 recipients", "mode": "parallel", "size": 3}
    parts = children_to(batch)
    assert [len(part) for part in parts] == [100, 100, 50]
    assert [a for part in parts for a in part] == addresses(250)
    child = Job.objects.filter(parent=batch).first()
    assert child is not None and child.kind == "email.send" and child.params["subject"] == "News"
    assert Batch.objects.get(pk=batch.pk).total == 3


def test_100_recipients_stay_one_job(user: User) -> None:
    job, _ = services.submit(user, "news-2", "email.send", {"to": addresses(100), **MESSAGE})
    assert job.kind == "email.send" and job.parent_id is None and not Job.objects.filter(parent=job).exists()


def test_a_file_of_addresses_is_read_once_per_address_header_and_repeats_skipped(user: User) -> None:
    lines = ["email", *addresses(150), "READER0@example.com", '"reader7@example.com"', ""]
    upload = stored_upload(user, "\r\n".join(lines).encode())
    batch, _ = services.submit(user, "news-3", "email.send", {"recipients_file": str(upload.pk), **MESSAGE})
    parts = children_to(batch)
    assert [len(part) for part in parts] == [100, 50]
    assert [a for part in parts for a in part] == addresses(150)
    assert all("recipients_file" not in child.params for child in Job.objects.filter(parent=batch))


def test_a_small_file_makes_one_plain_job_with_the_addresses(user: User) -> None:
    upload = stored_upload(user, b"ada@example.com, bob@example.com\n")
    job, _ = services.submit(user, "news-4", "email.send", {"recipients_file": str(upload.pk), **MESSAGE})
    assert job.kind == "email.send" and job.params["to"] == ["ada@example.com", "bob@example.com"]
    assert "recipients_file" not in job.params


@pytest.mark.parametrize(
    ("content", "field", "text"),
    [
        (b"ada@example.com\nnot an address\n", "recipients_file", "Line 2: Enter a valid email address."),
        (b"email\n", "recipients_file", "The file holds no address."),
    ],
)
def test_a_bad_file_is_invalid_params_naming_the_line(user: User, content: bytes, field: str, text: str) -> None:
    upload = stored_upload(user, content)
    with pytest.raises(InvalidParams) as refused:
        services.submit(user, "bad", "email.send", {"recipients_file": str(upload.pk), **MESSAGE})
    assert refused.value.details is not None and refused.value.details[field].startswith(text)
    assert not Job.objects.exists()


def test_addresses_in_both_places_or_in_neither_are_refused(user: User) -> None:
    upload = stored_upload(user, b"ada@example.com\n")
    for params in ({"to": ["bob@example.com"], "recipients_file": str(upload.pk)}, {}):
        with pytest.raises(InvalidParams) as refused:
            services.submit(user, "bad", "email.send", {**params, **MESSAGE})
        assert list(refused.value.details or {}) == ["to"]


def test_a_job_of_a_batch_may_not_be_split_again(user: User) -> None:
    jobs = [("email.send", {"to": addresses(101), **MESSAGE})]
    with pytest.raises(InvalidParams) as refused:
        services.submit_batch(user, "b", "", "parallel", jobs)
    assert list(refused.value.details or {}) == ["jobs.0.params"]
