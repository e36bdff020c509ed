"""patches.prepared: a query compiled once per process gives, for any values, what the ORM gives.

Every query of the project built with Prepared is compared here with the same
query written with the ORM, on the database the suite runs on (SQLite, or
PostgreSQL in CI), for more than one set of values, so a value left in the kept
SQL from an earlier call, or from the compile's marker, shows as a wrong answer.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db.models import Q
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from accounts import groups, tokens
from notifications import inbox, notices
from notifications.models import Notice, Notification, NotificationKind
from patches.prepared import Prepared
from tasks import services, transitions
from tasks.models import BATCH_KIND, FINISHED, Batch, BatchMode, Job, JobStatus
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

_request_ids = itertools.count()


def _job(owner: User, status: str, minutes_ago: int = 0, kind: str = "countdown") -> Job:
    job = Job.objects.create(owner=owner, kind=kind, params={"n": 1}, status=status, request_id=str(next(_request_ids)))
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return job


@pytest.fixture
def owners() -> list[User]:
    """Three users with jobs in every state, a batch among them; the third has none."""
    first, second, third = UserFactory.create(), UserFactory.create(), UserFactory.create()
    for minutes, status in enumerate([*JobStatus.values, *JobStatus.values]):
        _job(first, status, minutes)
        _job(second, status, minutes + 1)
    batch = _job(first, JobStatus.RUNNING, 30, kind=BATCH_KIND)
    Batch.objects.create(job=batch, mode=BatchMode.PARALLEL, total=3, running=1, queued=2)
    return [first, second, third]


def _orm_snapshot(owner: User, limit: int) -> list[Job]:
    jobs = Job.objects.filter(owner=owner, parent=None).select_related("batch_counts").order_by("-created_at")
    return list(jobs.exclude(status__in=FINISHED)) + list(jobs.filter(status__in=FINISHED)[:limit])


def _same_jobs(got: list[Job], expected: list[Job]) -> None:
    assert [(j.pk, j.status, j.seq, j.params, j.created_at) for j in got] == [
        (j.pk, j.status, j.seq, j.params, j.created_at) for j in expected
    ]
    for job in got:
        if job.kind == BATCH_KIND:
            assert job.batch_counts.counts() == Batch.objects.get(job=job).counts()


def test_the_hello_snapshot_is_the_orms_for_every_owner_and_limit(owners: list[User]) -> None:
    for owner, limit in [(owners[0], 50), (owners[1], 2), (owners[0], 1), (owners[2], 50), (owners[1], 50)]:
        got = services.snapshot(owner, limit)
        _same_jobs(got, _orm_snapshot(owner, limit))
        assert all(job.owner_id == owner.pk for job in got)
    assert services.snapshot(owners[0], 50), "the fixture gave the first owner jobs"


def test_a_prepared_query_is_compiled_once_per_process(owners: list[User], monkeypatch: pytest.MonkeyPatch) -> None:
    query = Prepared(lambda owner_id: Job.objects.filter(owner_id=owner_id), owner_id=Job._meta.get_field("owner"))
    query.all(owner_id=owners[0].pk)
    compiles = 0
    compile_sql = SQLCompiler.as_sql

    def counted(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        nonlocal compiles
        compiles += 1
        return compile_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    second = {job.pk for job in query.all(owner_id=owners[1].pk)}
    assert compiles == 0
    assert second == set(Job.objects.filter(owner=owners[1]).values_list("pk", flat=True))


def test_a_prepared_query_works_out_its_row_converters_once_per_connection(
    owners: list[User], monkeypatch: pytest.MonkeyPatch
) -> None:
    query = Prepared(lambda owner_id: Job.objects.filter(owner_id=owner_id), owner_id=Job._meta.get_field("owner"))
    query.all(owner_id=owners[0].pk)
    worked_out = 0
    get_converters = SQLCompiler.get_converters

    def counted(self: SQLCompiler, expressions: Any) -> Any:
        nonlocal worked_out
        worked_out += 1
        return get_converters(self, expressions)

    monkeypatch.setattr(SQLCompiler, "get_converters", counted)
    second = query.all(owner_id=owners[1].pk)
    assert worked_out == 0
    # Still converted: JSON to dicts, datetimes aware, as the ORM gives them.
    expected = {job.pk: (job.params, job.created_at) for job in Job.objects.filter(owner=owners[1])}
    assert {job.pk: (job.params, job.created_at) for job in second} == expected
    assert all(isinstance(job.params, dict) and job.created_at.tzinfo is not None for job in second)


def test_notices_in_hello_are_those_of_the_users_audience_and_unexpired(owners: list[User]) -> None:
    member, outsider, _ = owners
    ops = Group.objects.create(name="ops")
    member.groups.add(ops)
    soon, past = timezone.now() + timedelta(hours=1), timezone.now() - timedelta(hours=1)
    everyone = Notice.objects.create(text="to all", level="info")
    to_ops = Notice.objects.create(text="to ops", level="info", group=ops, expires_at=soon)
    Notice.objects.create(text="expired", level="info", expires_at=past)
    Notice.objects.create(text="other group", level="info", group=Group.objects.create(name="other"))
    # The per-user query, which a hello uses when there are too many notices to keep (notifications.notices).
    now = timezone.now()
    assert notices._ACTIVE.all(user_id=member.pk, now=now) == [to_ops, everyone]
    assert notices._ACTIVE.all(user_id=outsider.pk, now=now) == [everyone]
    assert groups.group_ids(member.pk) == [ops.pk]
    assert groups.group_ids(outsider.pk) == []
    orm = Notice.objects.filter(
        Q(group__isnull=True) | Q(group__in=member.groups.all()), Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    ).order_by("-created_at", "-id")
    assert notices._ACTIVE.all(user_id=member.pk, now=now) == list(orm)


def test_the_unread_count_is_each_users_own(owners: list[User]) -> None:
    first, second, _ = owners
    for user, unread, read in [(first, 3, 1), (second, 1, 2)]:
        for _ in range(unread):
            Notification.objects.create(user=user, kind=NotificationKind.NOTICE, text="unread")
        for _ in range(read):
            Notification.objects.create(user=user, kind=NotificationKind.NOTICE, text="read", read_at=timezone.now())
    assert [inbox.unread_count(user.pk) for user in owners] == [3, 1, 0]
    assert inbox.unread_count(first.pk) == Notification.objects.filter(user=first, read_at__isnull=True).count()


def test_a_token_handshake_finds_its_own_active_token_only(owners: list[User]) -> None:
    first_token, first_raw = tokens.create(owners[0], "one")
    second_token, second_raw = tokens.create(owners[1], "two")
    authenticated = tokens.authenticate(first_raw)
    assert authenticated is not None and (authenticated.pk, authenticated.user) == (first_token.pk, owners[0])
    authenticated = tokens.authenticate(second_raw)
    assert authenticated is not None and (authenticated.pk, authenticated.user) == (second_token.pk, owners[1])
    tokens.revoke(first_token)
    assert tokens.authenticate(first_raw) is None
    assert tokens.authenticate(tokens.TOKEN_PREFIX + "not-a-token") is None


def test_a_transition_reads_the_job_it_was_asked_for(owners: list[User]) -> None:
    queued = Job.objects.filter(owner=owners[0], status=JobStatus.QUEUED)
    for job in queued:
        cancelled = transitions.cancel(job.pk, note="test")
        assert cancelled is not None and cancelled.pk == job.pk
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED
    assert transitions.cancel(uuid.uuid4(), note="test") is None
    assert transitions.cancel(str(queued[0].pk), note="again") is None  # finished now: not allowed


def test_an_argument_the_sql_does_not_use_is_refused_at_compile() -> None:
    query = Prepared(lambda owner_id: Job.objects.all(), owner_id=Job._meta.get_field("owner"))
    with pytest.raises(ValueError, match="owner_id"):
        query.all(owner_id=1)
    with pytest.raises(TypeError, match="arguments"):
        Prepared(lambda owner_id: Job.objects.filter(owner_id=owner_id), owner_id=Job._meta.pk).all(owner=1)
