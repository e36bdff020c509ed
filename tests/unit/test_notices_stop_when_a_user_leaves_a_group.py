"""A user removed from an auth group while connected stops seeing its notices at once, although the
socket joined the group's channel group when it connected: a socket shows a notice only to a user
the notice addressed when it was sent."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, User

from notifications import inbox, notices
from notifications.models import Level, Notice
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ops(user: User, other_user: User) -> Group:
    """A group both users are in."""
    group = Group.objects.create(name="ops")
    group.user_set.add(user, other_user)
    return group


async def broadcast(text: str, group: Group | None = None) -> Notice:
    notice: Notice = await database_sync_to_async(notices.broadcast)(None, text, Level.INFO, group)
    return notice


async def next_notice(socket: Socket) -> tuple[dict[str, Any], dict[str, Any]]:
    notice, created = await socket.receive(), await socket.receive()
    assert notice["type"] == "notice" and created["type"] == "notification.created", (notice, created)
    return notice, created


async def test_a_user_removed_from_a_group_while_connected_no_longer_sees_its_notices(
    user: User, other_user: User, ops: Group
) -> None:
    async with connected(user) as (removed, _), connected(other_user) as (member, _):
        await database_sync_to_async(ops.user_set.remove)(user)
        await broadcast("Ops only: rotate the keys", group=ops)
        notice, created = await next_notice(member)
        assert notice["notice"]["text"] == "Ops only: rotate the keys" and created["unread"] == 1
        # Neither the notice nor a notification: the next thing the removed user hears is
        # the next notice to everyone, counted without the one that did not address them.
        await broadcast("To everyone")
        notice, created = await next_notice(removed)
        assert notice["notice"]["text"] == "To everyone" and created["unread"] == 1
        assert await removed.nothing_more()


async def test_a_notice_that_cannot_be_checked_is_not_shown(
    user: User, ops: Group, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(user_id: int, notice_id: int) -> None:
        raise ConnectionError("database unreachable")

    async with connected(user) as (socket, _):
        with monkeypatch.context() as patch:
            patch.setattr(inbox, "of_notice", unreachable)
            await broadcast("Unverifiable", group=ops)
            assert await socket.nothing_more()
        assert any(record.exc_info for record in caplog.records)
        await broadcast("Checked")
        notice, _ = await next_notice(socket)
        assert notice["notice"]["text"] == "Checked"
