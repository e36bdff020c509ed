"""A hello's notices come from the process's copy of every unexpired notice (notifications.notices): no
statement of their own on each connect, the same notices as the per-user query, and a sent notice is
there at once, in the process that sent it and in every process one of whose sockets it reached."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import notices
from notifications.models import Level, Notice
from tests.factories import UserFactory
from tests.unit.sockets import connected
from transport.groups import notice_group

pytestmark = pytest.mark.django_db(transaction=True)


def _notice_reads(queries: CaptureQueriesContext) -> int:
    return sum('FROM "notifications_notice"' in query["sql"] for query in queries.captured_queries)


def _as_the_database_answers(user: User) -> list[Notice]:
    now = timezone.now()
    return list(
        Notice.objects.filter(
            Q(group__isnull=True) | Q(group__in=user.groups.all()), Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        ).order_by("-created_at", "-id")[: notices.HELLO_NOTICES]
    )


def test_the_copy_gives_each_user_their_audiences_notices_and_reads_them_once() -> None:
    member, outsider = UserFactory.create(), UserFactory.create()
    ops, other = Group.objects.create(name="ops"), Group.objects.create(name="other")
    member.groups.add(ops)
    soon, past = timezone.now() + timedelta(hours=1), timezone.now() - timedelta(hours=1)
    Notice.objects.create(text="to all", level=Level.INFO)
    Notice.objects.create(text="to ops", level=Level.INFO, group=ops, expires_at=soon)
    Notice.objects.create(text="expired", level=Level.INFO, expires_at=past)
    Notice.objects.create(text="to another group", level=Level.INFO, group=other)
    for n in range(notices.HELLO_NOTICES):
        Notice.objects.create(text=f"older {n}", level=Level.INFO, group=ops)

    with CaptureQueriesContext(connection) as queries:
        for_member = notices.active_for(member.pk, [ops.pk])
        for_outsider = notices.active_for(outsider.pk, [])
        again = notices.active_for(member.pk, [ops.pk])

    assert for_member == again == _as_the_database_answers(member)
    assert len(for_member) == notices.HELLO_NOTICES
    assert for_outsider == _as_the_database_answers(outsider)
    assert [notice.text for notice in for_outsider] == ["to all"]
    assert _notice_reads(queries) == 1  # the copy, once for all three


def test_a_notice_that_expires_leaves_the_copy_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    user = UserFactory.create()
    Notice.objects.create(text="brief", level=Level.INFO, expires_at=timezone.now() + timedelta(minutes=1))
    assert [notice.text for notice in notices.active_for(user.pk, [])] == ["brief"]

    later = timezone.now() + timedelta(minutes=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert notices.active_for(user.pk, []) == []


def test_the_copy_is_read_again_after_its_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    user = UserFactory.create()
    assert notices.active_for(user.pk, []) == []
    Notice.objects.create(text="written by another process", level=Level.INFO)  # no broadcast reaches us
    assert notices.active_for(user.pk, []) == []  # the copy, within its lifetime

    start = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: start + notices._Unexpired.CACHE_SECONDS + 1)
    assert [notice.text for notice in notices.active_for(user.pk, [])] == ["written by another process"]


def test_a_notice_sent_here_is_in_the_next_hello_at_once() -> None:
    user = UserFactory.create()
    assert notices.active_for(user.pk, []) == []

    notices.broadcast(None, "Maintenance at noon", Level.WARNING)

    assert [notice.text for notice in notices.active_for(user.pk, [])] == ["Maintenance at noon"]


async def test_a_broadcast_reaching_a_socket_refreshes_the_copy_of_its_process(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when another process sent it: the row is written without this process's broadcast hook, and
    only the channel layer's message tells this process."""
    monkeypatch.setattr(notices._Unexpired, "CACHE_SECONDS", 3600.0)  # so only the broadcast can refresh it
    async with connected(user) as (socket, hello):
        assert hello["notices"] == []  # the copy is taken, with no notice in it
        notice = await database_sync_to_async(Notice.objects.create)(text="from elsewhere", level=Level.INFO)
        assert await database_sync_to_async(notices.active_for)(user.pk, []) == []

        layer = get_channel_layer()
        assert layer is not None
        await layer.group_send(notice_group(None), {"type": "notice.broadcast", "notice_id": notice.pk, "text": "{}"})

        async with asyncio.timeout(3):
            while not (fresh := await database_sync_to_async(notices.active_for)(user.pk, [])):  # noqa: ASYNC110 (the handler runs on the consumer's task: nothing to wait on)
                await asyncio.sleep(0.02)
        assert [n.text for n in fresh] == ["from elsewhere"]
        assert await socket.nothing_more()  # no notification of it for this user: nothing shown


def test_too_many_notices_to_keep_are_read_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    member = UserFactory.create()
    ops = Group.objects.create(name="ops")
    member.groups.add(ops)
    Notice.objects.bulk_create(
        Notice(text=f"n{n}", level=Level.INFO, group=ops if n % 2 else None)
        for n in range(notices._Unexpired.CACHE_LIMIT + 1)
    )

    with CaptureQueriesContext(connection) as queries:
        first = notices.active_for(member.pk, [ops.pk])
        second = notices.active_for(member.pk, [ops.pk])

    assert first == second == _as_the_database_answers(member)
    assert _notice_reads(queries) == 3  # the copy (too many: not kept), then each hello's own query


def test_a_read_that_a_notice_overtook_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notice sent while a hello reads the copy: that read may predate it, so it is used once, not kept."""
    user = UserFactory.create()
    real = notices._UNEXPIRED
    reads = 0

    class SentMeanwhile:
        def all(self, **values: Any) -> list[Notice]:
            nonlocal reads
            reads += 1
            rows = real.all(**values)
            notices.forget_unexpired()  # as a broadcast arriving on another thread during the read
            return rows

    monkeypatch.setattr(notices, "_UNEXPIRED", SentMeanwhile())
    notices.active_for(user.pk, [])
    notices.active_for(user.pk, [])

    assert reads == 2  # the first read was not kept: the second hello read again
