"""Who may open a socket: a logged-in session from an allowed Origin."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.test import Client

from core.asgi import application
from gateway.consumers import JobsConsumer

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_anonymous_socket_is_closed_with_4401_and_sent_nothing() -> None:
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    communicator.scope["user"] = AnonymousUser()
    await communicator.connect()
    assert await communicator.receive_output(3) == {"type": "websocket.close", "code": 4401}


@database_sync_to_async
def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(b"http://localhost", True), (b"http://evil.example", False), (None, False)],
)
async def test_a_session_socket_needs_an_allowed_origin(user: User, origin: bytes | None, accepted: bool) -> None:
    headers = [(b"cookie", await session_cookie(user))]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/jobs/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected is accepted
    if accepted:
        assert (await communicator.receive_json_from())["type"] == "hello"
    await communicator.disconnect()
