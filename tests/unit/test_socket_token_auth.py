"""Scripts authenticate the socket with `Authorization: Bearer <token>`; they need no Origin."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from accounts import tokens
from core.asgi import application
from tests.unit.sockets import closed_with

pytestmark = pytest.mark.django_db(transaction=True)


def token_socket(raw: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/jobs/", headers=[(b"authorization", f"Bearer {raw}".encode())])


async def test_a_token_socket_needs_no_origin(user: User) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "script")
    communicator = token_socket(raw)
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from()
    assert hello["type"] == "hello" and hello["user"]["id"] == user.pk
    await communicator.disconnect()


@pytest.mark.parametrize("raw", ["jobs_not-a-real-token", "garbage"])
async def test_a_wrong_token_is_refused_like_anonymous(user: User, raw: str) -> None:
    communicator = token_socket(raw)
    await communicator.connect()
    assert await closed_with(communicator) == 4401


async def test_a_revoked_token_is_refused_and_revoking_closes_open_sockets(user: User) -> None:
    token, raw = await database_sync_to_async(tokens.create)(user, "script")
    communicator = token_socket(raw)
    await communicator.connect()
    await communicator.receive_json_from()  # hello
    await database_sync_to_async(tokens.revoke)(token)
    assert await closed_with(communicator) == 4403
    again = token_socket(raw)
    await again.connect()
    assert await closed_with(again) == 4401


async def test_a_token_header_is_never_mixed_with_a_session(user: User) -> None:
    """A wrong token with a valid session cookie is still refused: the token alone decides."""
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    headers = [
        (b"authorization", b"Bearer jobs_wrong"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://localhost"),
    ]
    communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
    await communicator.connect()
    assert await closed_with(communicator) == 4401
