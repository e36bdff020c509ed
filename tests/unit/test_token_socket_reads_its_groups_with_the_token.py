"""A token socket's handshake reads the user's auth groups in the same trip to the database as the token
(accounts.websocket), and the socket joins their notice groups without a read of its own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User

from accounts import tokens
from core.asgi import application
from gateway import consumers
from notifications import notices
from notifications.models import Level

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_token_socket_joins_its_users_groups_with_no_read_of_its_own(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = await database_sync_to_async(Group.objects.create)(name="ops")
    await database_sync_to_async(user.groups.add)(ops)
    _, raw = await database_sync_to_async(tokens.create)(user, "script")

    def second_trip(_: int) -> list[int]:
        raise AssertionError("the consumer read the groups again")

    # The consumer's own read (accounts.websocket reads them through the module itself, with the token).
    monkeypatch.setattr(consumers, "groups", SimpleNamespace(group_ids=second_trip))
    headers = [(b"authorization", f"Bearer {raw}".encode())]
    communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"

    await database_sync_to_async(notices.broadcast)(None, "Deploy frozen", Level.WARNING, ops, None)
    notice = await communicator.receive_json_from(timeout=5)
    assert notice["type"] == "notice" and notice["notice"]["text"] == "Deploy frozen"
    await communicator.disconnect()
