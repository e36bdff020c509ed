"""A notice reaches every open socket of everyone it addresses, and nobody else; users who connect
later find it in hello while it has not expired; everyone addressed, offline or not, gets it unread."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.auth.models import Group, User
from django.utils import timezone

from gateway import frames
from notifications import notices
from notifications.models import Level, Notice
from tests.factories import UserFactory
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ops(user: User) -> Group:
    """A group `user` is in and `other_user` is not."""
    group = Group.objects.create(name="ops")
    user.groups.add(group)
    return group


async def broadcast(text: str, group: Group | None = None, expires_in: timedelta | None = None) -> Notice:
    expires_at = timezone.now() + expires_in if expires_in else None
    notice: Notice = await database_sync_to_async(notices.broadcast)(None, text, Level.WARNING, group, expires_at)
    return notice


async def receive_notice(socket: Socket) -> tuple[dict[str, Any], dict[str, Any]]:
    """The notice event and the notification that follows it."""
    notice, created = await socket.receive(), await socket.receive()
    assert notice["type"] == "notice" and created["type"] == "notification.created", (notice, created)
    return notice, created


async def test_a_notice_to_everyone_reaches_every_socket_of_every_user(user: User, other_user: User) -> None:
    async with connected(user) as (tab1, _), connected(user) as (tab2, _), connected(other_user) as (theirs, _):
        sent = await broadcast("Maintenance at 18:00", expires_in=timedelta(hours=2))
        for socket in (tab1, tab2, theirs):
            notice, created = await receive_notice(socket)
            assert notice["notice"] == {
                "id": sent.pk,
                "level": "warning",
                "text": "Maintenance at 18:00",
                "created_at": frames.timestamp(sent.created_at),
                "expires_at": frames.timestamp(sent.expires_at),
            }
            assert created["unread"] == 1
            assert created["notification"]["notice_id"] == sent.pk
            assert created["notification"]["kind"] == "notice"


async def test_a_notice_to_a_group_reaches_its_members_only(user: User, other_user: User, ops: Group) -> None:
    async with connected(user) as (member, _), connected(other_user) as (outsider, _):
        await broadcast("Deploy frozen", group=ops)
        notice, _ = await receive_notice(member)
        assert notice["notice"]["text"] == "Deploy frozen"
        # The next notice to everyone is the first thing the outsider hears.
        await broadcast("Hello all")
        notice, created = await receive_notice(outsider)
        assert notice["notice"]["text"] == "Hello all" and created["unread"] == 1
        notice, created = await receive_notice(member)
        assert notice["notice"]["text"] == "Hello all" and created["unread"] == 2
        assert await member.nothing_more() and await outsider.nothing_more()


async def test_hello_holds_the_unexpired_notices_of_the_users_audience(
    user: User, other_user: User, ops: Group
) -> None:
    everyone = await broadcast("For everyone", expires_in=timedelta(hours=1))
    group = await broadcast("For ops", group=ops)
    expired = await broadcast("Over soon", expires_in=timedelta(hours=1))
    await database_sync_to_async(Notice.objects.filter(pk=expired.pk).update)(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    async with connected(user) as (_, hello):
        assert [notice["id"] for notice in hello["notices"]] == [group.pk, everyone.pk]
        assert hello["unread"] == 3  # the expired notice's notification is still there to read
    async with connected(other_user) as (_, hello):
        assert [notice["id"] for notice in hello["notices"]] == [everyone.pk]
        assert hello["unread"] == 2


async def test_users_who_were_offline_find_their_notice_unread(user: User, other_user: User, ops: Group) -> None:
    inactive = await database_sync_to_async(UserFactory.create)(is_active=False)
    await broadcast("While you were away", group=ops)
    await broadcast("Everyone, while you were away")
    async with connected(user) as (socket, hello):
        assert hello["unread"] == 2
        listed = await socket.request({"type": "notification.list"})
        assert [n["text"] for n in listed["notifications"]] == ["Everyone, while you were away", "While you were away"]
    async with connected(other_user) as (_, hello):
        assert hello["unread"] == 1
    assert await database_sync_to_async(inactive.notifications.count)() == 0


async def test_a_socket_joins_the_groups_its_user_is_in_when_it_connects(user: User, other_user: User) -> None:
    group = await database_sync_to_async(Group.objects.create)(name="late")
    async with connected(other_user) as (before, _):
        await database_sync_to_async(other_user.groups.add)(group)
        async with connected(other_user) as (after, _):
            await broadcast("To the late group", group=group)
            notice, created = await receive_notice(after)
            assert notice["notice"]["text"] == "To the late group" and created["unread"] == 1
            # The socket opened before the user joined does not hear it (it sees it in its next
            # hello): the next thing it hears is the next notice to everyone.
            await broadcast("Everyone")
            assert (await before.receive())["notice"]["text"] == "Everyone"


async def test_a_closed_socket_leaves_the_notice_groups(user: User, ops: Group) -> None:
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    joined = ["everyone", f"authgroup.{ops.pk}"]
    async with connected(user):
        assert all(layer.groups.get(group) for group in joined)
    assert not any(layer.groups.get(group) for group in joined)
