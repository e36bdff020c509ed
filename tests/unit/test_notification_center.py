"""notification.list, notification.read and notification.read_all over the socket: pages newest first,
unread counts in step on every tab, someone else's notification looks missing, wrong types are refused."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from notifications.models import Notification, NotificationKind
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def notify(user: User, count: int) -> list[int]:
    """`count` unread notifications for `user`, oldest first; their ids."""
    rows = [Notification.objects.create(user=user, kind=NotificationKind.NOTICE, text=f"n{n}") for n in range(count)]
    return [row.pk for row in rows]


async def unread_event(socket: Socket) -> dict[str, Any]:
    event = await socket.receive()
    assert event["type"] == "notification.unread", event
    return event


async def test_hello_carries_the_unread_count(user: User) -> None:
    await notify(user, 2)
    async with connected(user) as (_, hello):
        assert hello["unread"] == 2 and hello["notices"] == []


async def test_the_list_pages_newest_first(user: User, other_user: User) -> None:
    ids = await notify(user, 5)
    await notify(other_user, 3)
    async with connected(user) as (socket, _):
        first = await socket.request({"type": "notification.list", "limit": 2})
        assert first["type"] == "notification.list" and first["before"] is None
        assert [n["id"] for n in first["notifications"]] == [ids[4], ids[3]]
        assert first["more"] is True and first["unread"] == 5
        assert first["notifications"][0]["text"] == "n4" and first["notifications"][0]["read"] is False
        rest = await socket.request({"type": "notification.list", "before": ids[3]})
        assert [n["id"] for n in rest["notifications"]] == [ids[2], ids[1], ids[0]]
        assert rest["more"] is False and rest["before"] == ids[3]


async def test_reading_one_updates_the_count_on_every_tab(user: User) -> None:
    ids = await notify(user, 3)
    async with connected(user) as (tab1, _), connected(user) as (tab2, _):
        await tab1.send({"type": "notification.read", "id": ids[1]})
        for tab in (tab1, tab2):
            assert await unread_event(tab) == {
                "type": "notification.unread",
                "unread": 2,
                "read": [ids[1]],
                "read_up_to": None,
            }
        # Reading it again changes nothing, but still answers with the count.
        await tab2.send({"type": "notification.read", "id": ids[1]})
        for tab in (tab1, tab2):
            assert (await unread_event(tab))["unread"] == 2
        listed = await tab1.request({"type": "notification.list"})
        assert [n["read"] for n in listed["notifications"]] == [False, True, False]


async def test_read_all_marks_everything_read_on_every_tab(user: User, other_user: User) -> None:
    ids = await notify(user, 3)
    await notify(other_user, 1)
    async with connected(user) as (tab1, _), connected(user) as (tab2, _):
        await tab2.send({"type": "notification.read_all"})
        for tab in (tab1, tab2):
            event = await unread_event(tab)
            assert event["unread"] == 0 and event["read_up_to"] == ids[-1] and event["read"] == []
    async with connected(user) as (_, hello):
        assert hello["unread"] == 0
    async with connected(other_user) as (_, hello):
        assert hello["unread"] == 1


async def test_read_all_with_nothing_to_read_answers_zero(user: User) -> None:
    async with connected(user) as (socket, _):
        event = await socket.request({"type": "notification.read_all"})
        assert event == {"type": "notification.unread", "unread": 0, "read": [], "read_up_to": None}


async def test_someone_elses_notification_is_not_found_like_a_missing_one(user: User, other_user: User) -> None:
    (theirs,) = await notify(other_user, 1)
    async with connected(user) as (socket, _), connected(other_user) as (owner, _):
        foreign = await socket.request({"type": "notification.read", "id": theirs})
        missing = await socket.request({"type": "notification.read", "id": theirs + 1000})
        for reply in (foreign, missing):
            assert reply == {
                "type": "error",
                "request_id": None,
                "code": "not_found",
                "message": "No such notification.",
            }
        assert await owner.nothing_more()
    assert await database_sync_to_async(Notification.objects.filter(pk=theirs, read_at__isnull=True).exists)()


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "notification.read"}, "id"),
        ({"type": "notification.read", "id": "5"}, "id"),
        ({"type": "notification.read", "id": 5.0}, "id"),
        ({"type": "notification.read", "id": True}, "id"),
        ({"type": "notification.read", "id": 0}, "id"),
        ({"type": "notification.read", "id": 2**63}, "id"),
        ({"type": "notification.list", "before": "10"}, "before"),
        ({"type": "notification.list", "before": -1}, "before"),
        ({"type": "notification.list", "limit": 0}, "limit"),
        ({"type": "notification.list", "limit": 101}, "limit"),
        ({"type": "notification.list", "limit": None}, "limit"),
    ],
)
async def test_wrong_types_are_bad_messages(user: User, message: dict[str, Any], field: str) -> None:
    async with connected(user) as (socket, _):
        reply = await socket.request(message)
        assert reply["code"] == "bad_message" and field in reply["details"], reply
        assert await socket.request({"type": "ping"}) == {"type": "pong"}
