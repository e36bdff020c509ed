"""The handshake as Daphne serves it: cross-site WebSocket hijacking is refused, tokens need no Origin,
anonymous sockets are refused, and frames the protocol forbids close the connection with documented codes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accounts import tokens
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


async def test_a_frame_over_128_kib_is_dropped_by_daphne_before_the_application(
    live_stack: LiveStack, user: User
) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "script")
    headers = {"Authorization": f"Bearer {raw}"}
    async with connect(live_stack.ws_url, additional_headers=headers, max_size=None) as socket_:
        await socket_.recv()  # hello
        await socket_.send('{"type":"ping","pad":"' + "x" * (200 * 1024) + '"}')
        with pytest.raises(ConnectionClosed) as excinfo:
            await asyncio.wait_for(socket_.recv(), 10)
    # Autobahn (--websocket-max-message-size) fails the connection itself: by default it
    # drops TCP without a close frame, or it closes with 1009. Not 4009, which would mean
    # the frame reached Python, nor 1011, an application crash.
    closed = excinfo.value.rcvd
    assert closed is None or closed.code == 1009, closed
    async with connect(live_stack.ws_url, additional_headers=headers) as socket_:
        assert json.loads(await socket_.recv())["type"] == "hello"  # the server is fine


async def test_a_session_socket_from_an_allowed_origin_is_upgraded(live_stack: LiveStack, user: User) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    headers = {"Cookie": cookie, "Origin": live_stack.base_url}
    async with connect(live_stack.ws_url, additional_headers=headers) as socket:
        assert socket.response is not None and socket.response.status_code == 101
        assert json.loads(await socket.recv())["type"] == "hello"


async def test_a_token_socket_needs_no_origin_through_daphne(live_stack: LiveStack, user: User) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "script")
    async with connect(live_stack.ws_url, additional_headers={"Authorization": f"Bearer {raw}"}) as socket:
        hello = json.loads(await socket.recv())
    assert hello["type"] == "hello"
    assert hello["user"]["id"] == user.pk


async def test_invalid_utf8_is_closed_by_the_websocket_layer_not_the_application(
    live_stack: LiveStack, user: User
) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "script")
    code = await asyncio.to_thread(send_raw_text_frame, live_stack.base_url, raw, b'{"type":"\xff\xfe"}')
    # Autobahn fails the connection itself: a 1007 close, or (its default) a
    # dropped TCP connection. Never 1011, which would mean the application crashed.
    assert code in (1007, None)
    async with connect(live_stack.ws_url, additional_headers={"Authorization": f"Bearer {raw}"}) as socket_:
        assert json.loads(await socket_.recv())["type"] == "hello"  # the server is fine


def send_raw_text_frame(base_url: str, token: str, payload: bytes) -> int | None:
    """Handshake by hand, send one masked text frame carrying `payload`; the server's close code,
    or None if it dropped the connection without a close frame."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/jobs/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        sock.sendall(request.encode())
        stream = sock.makefile("rb")
        assert stream.readline().split()[1] == b"101"
        while stream.readline() not in (b"\r\n", b""):
            pass
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        while True:  # read server frames (unmasked) until the close frame
            try:
                header = stream.read(2)
            except ConnectionResetError:
                return None
            if len(header) < 2:
                return None
            first, second = header
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", stream.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", stream.read(8))[0]
            body = stream.read(length)
            if first & 0x0F == 0x8:
                return int(struct.unpack("!H", body[:2])[0])
