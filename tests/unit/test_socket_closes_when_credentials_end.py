"""A user logged out elsewhere, deactivated, or whose session vanished loses every open socket (4403)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from pytest_django.fixtures import Settings

from core.asgi import application
from tests.unit.sockets import closed_with

pytestmark = pytest.mark.django_db(transaction=True)


async def logged_in(user: User) -> Client:
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    return client


async def session_socket(client: Client) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application, "/ws/jobs/", headers=[(b"cookie", cookie), (b"origin", b"http://localhost")]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


async def test_logging_out_closes_the_sockets_of_that_session_only(user: User) -> None:
    browser, other_browser = await logged_in(user), await logged_in(user)
    tab = await session_socket(browser)
    elsewhere = await session_socket(other_browser)
    await database_sync_to_async(browser.post)("/accounts/logout/")
    assert await closed_with(tab) == 4403
    assert await elsewhere.receive_nothing(0.3)
    await elsewhere.disconnect()


async def test_deactivating_a_user_closes_all_their_sockets(user: User) -> None:
    tab = await session_socket(await logged_in(user))

    def deactivate() -> None:
        user.is_active = False
        user.save()

    await database_sync_to_async(deactivate)()
    assert await closed_with(tab) == 4403


async def test_a_session_that_ends_without_a_logout_is_noticed_by_the_periodic_recheck(
    user: User, settings: Settings
) -> None:
    settings.AUTH_RECHECK_SECONDS = 0.5
    tab = await session_socket(await logged_in(user))
    await database_sync_to_async(Session.objects.all().delete)()  # expired or flushed server-side
    assert await closed_with(tab, timeout=10) == 4403
