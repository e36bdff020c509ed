"""A peer that vanished without closing (a sleeping laptop, a cut cable) is found by Daphne's keepalive
ping and dropped: its socket leaves the user's channel-layer group and gives back its connection slot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from accounts import tokens
from core import stack
from gateway.throttle import KEY_PREFIX
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import wait_until
from transport.groups import user_group

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pinging_daphne(fault_stack: FaultStack) -> Iterator[int]:
    """A Daphne on the fault stack that pings every second and gives up on a peer after 2 s: its port."""
    port = stack.free_port()
    command = stack.daphne_command("127.0.0.1", port, "--ping-interval", "1", "--ping-timeout", "2")
    with open(fault_stack.logs / "daphne-pinging.log", "ab") as log:
        process = subprocess.Popen(command, env=fault_stack.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=process)
        yield port
    finally:
        stack.stop([process])


def open_dead_peer(port: int, token: str) -> socket.socket:
    """A WebSocket client that completes the handshake, reads its hello, then never reads or answers again."""
    peer = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    peer.sendall(
        (
            f"GET /ws/jobs/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b'"hello"' not in received:
        chunk = peer.recv(65536)
        assert chunk, f"closed during the handshake: {received!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    return peer


def group_subscribers(redis_url: str, user_id: int) -> int:
    """Subscribers of the user's group on the pubsub channel layer: one per Daphne with a member socket."""
    with redis.Redis.from_url(redis_url) as client:
        ((_, count),) = client.pubsub_numsub(f"asgi__group__{user_group(user_id)}")
        return int(count)


def connection_slots(redis_url: str, user_id: int) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return int(client.zcard(f"{KEY_PREFIX}:connections:{user_id}"))


async def test_a_dead_peer_is_dropped_by_ping_timeout_and_leaves_its_group(
    fault_stack: FaultStack, pinging_daphne: int, user: User
) -> None:
    assert fault_stack.env.get("CHANNEL_LAYER", "pubsub") == "pubsub", "this test reads pubsub subscriptions"
    _, token = await database_sync_to_async(tokens.create)(user, "dead peer")
    peer = await asyncio.to_thread(open_dead_peer, pinging_daphne, token)
    try:
        assert group_subscribers(fault_stack.redis_url, user.pk) == 1
        assert connection_slots(fault_stack.redis_url, user.pk) == 1
        # Ping after 1 s, no pong within 2 s, checked every 2 s: gone within about 5 s.
        await wait_until(lambda: group_subscribers(fault_stack.redis_url, user.pk) == 0, "the group to empty", 30)
        assert connection_slots(fault_stack.redis_url, user.pk) == 0
        # And Daphne did hang up on it: past any unread frames, end of stream or a reset, not a timeout.
        peer.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            while peer.recv(65536):
                pass
    finally:
        peer.close()
