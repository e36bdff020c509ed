"""The handshake as Daphne serves it: a session needs an allowed Origin, anonymous sockets are refused."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import User
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.factories import PASSWORD
from tests.integration.client import login
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("origin", [None, "http://evil.example"])
async def test_a_session_socket_from_a_foreign_or_no_origin_gets_403(
    live_stack: LiveStack, user: User, origin: str | None
) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    headers = {"Cookie": cookie} | ({"Origin": origin} if origin else {})
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(live_stack.ws_url, additional_headers=headers, open_timeout=10):
            pass
    assert excinfo.value.response.status_code == 403


async def test_an_anonymous_socket_is_closed_with_4401(live_stack: LiveStack) -> None:
    async with connect(live_stack.ws_url, additional_headers={"Origin": live_stack.base_url}) as socket:
        with pytest.raises(ConnectionClosed) as excinfo:
            await asyncio.wait_for(socket.recv(), 10)
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd.code == 4401


async def test_a_frame_over_64_kib_closes_with_4009_through_daphne(live_stack: LiveStack, user: User) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    headers = {"Cookie": cookie, "Origin": live_stack.base_url}
    async with connect(live_stack.ws_url, additional_headers=headers, max_size=None) as socket:
        await socket.recv()  # hello
        await socket.send('{"type":"ping","pad":"' + "x" * (70 * 1024) + '"}')
        with pytest.raises(ConnectionClosed) as excinfo:
            await asyncio.wait_for(socket.recv(), 10)
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd.code == 4009
