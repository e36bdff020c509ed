"""Lost events are never silent: a publisher that dropped events for a group tells it to resync once it
can send again, a Daphne process whose layer Redis restarted or came back tells all its sockets, and a
socket told to resync closes with 4012 so that its client reconnects to a fresh hello."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from core import stack
from gateway import protocol
from gateway.consumers import JobsConsumer
from tests.unit.sockets import closed_with
from transport import watch
from transport.groups import user_group
from transport.publisher import FRAME_TYPE, RESYNC_TYPE, Publisher


class _FlakyLayer:
    """Fails every group_send while `down`; records what it delivered."""

    def __init__(self) -> None:
        self.down = True
        self.delivered: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError("Redis is down")
        self.delivered.append((group, message))


def test_groups_that_lost_events_are_told_to_resync_once_sends_work_again(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = _FlakyLayer()
    monkeypatch.setattr("transport.publisher.get_channel_layer", lambda: layer)
    publisher = Publisher()
    publisher.send("user.1", '{"lost":1}')
    publisher.send("user.2", '{"lost":2}')
    publisher.send("user.1", '{"lost":3}')
    assert publisher.flush(timeout=5)
    assert (publisher.sent, publisher.dropped, layer.delivered) == (0, 3, [])

    layer.down = False
    publisher.send("user.3", '{"after":1}')
    assert publisher.flush(timeout=5)
    assert layer.delivered == [
        ("user.3", {"type": FRAME_TYPE, "text": '{"after":1}'}),
        ("user.1", {"type": RESYNC_TYPE}),
        ("user.2", {"type": RESYNC_TYPE}),
    ]
    publisher.send("user.3", '{"after":2}')  # owed nothing any more
    assert publisher.flush(timeout=5)
    assert layer.delivered[-1] == ("user.3", {"type": FRAME_TYPE, "text": '{"after":2}'})
    assert len(layer.delivered) == 4
    publisher.reset()


class _ResyncRefusingLayer(_FlakyLayer):
    """Up, but refuses resync messages while `refuse_resyncs`."""

    refuse_resyncs = True

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if message["type"] == RESYNC_TYPE and self.refuse_resyncs:
            raise ConnectionError("Redis went away again")
        await super().group_send(group, message)


def test_a_resync_that_fails_stays_owed_and_costs_the_event_that_went_out_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = _ResyncRefusingLayer()
    monkeypatch.setattr("transport.publisher.get_channel_layer", lambda: layer)
    publisher = Publisher()
    publisher.send("user.1", '{"lost":1}')
    assert publisher.flush(timeout=5)
    layer.down = False
    publisher.send("user.2", '{"after":1}')
    assert publisher.flush(timeout=5)
    assert (publisher.sent, publisher.dropped) == (1, 1)  # the resync failed, the event did not
    assert layer.delivered == [("user.2", {"type": FRAME_TYPE, "text": '{"after":1}'})]

    layer.refuse_resyncs = False
    publisher.send("user.2", '{"after":2}')
    assert publisher.flush(timeout=5)
    assert layer.delivered[-1] == ("user.1", {"type": RESYNC_TYPE})  # still owed, told now
    publisher.reset()


async def test_a_socket_told_to_resync_closes_with_4012(user: User) -> None:
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "hello"
    await get_channel_layer().group_send(user_group(user.pk), {"type": RESYNC_TYPE})
    assert await closed_with(communicator) == protocol.CLOSE_RESYNC == 4012
    await communicator.disconnect()


class _Socket:
    def __init__(self) -> None:
        self.resynced = 0

    async def resync(self) -> None:
        self.resynced += 1


async def test_resync_all_reaches_every_registered_socket_and_not_unregistered_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watch, "_uses_redis", lambda: True)
    monkeypatch.setattr(watch, "_watch", lambda urls: asyncio.sleep(0))
    kept, gone = _Socket(), _Socket()
    watch.register(kept)
    watch.register(gone)
    watch.unregister(gone)
    await watch.resync_all("test")
    assert (kept.resynced, gone.resynced) == (1, 0)
    watch.unregister(kept)


async def test_the_watch_notices_a_redis_that_restarted_or_came_back(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{stack.free_port()}/0"
    redis = await asyncio.to_thread(stack.start_redis, url, tmp_path / "a")
    server = watch.Server(url)
    try:
        assert await server.lost_messages() is False  # first look
        assert await server.lost_messages() is False  # same server, still up

        await asyncio.to_thread(stack.stop, [redis])
        assert await server.lost_messages() is False  # down: nothing to resync with yet
        redis = await asyncio.to_thread(stack.start_redis, url, tmp_path / "b")
        assert await server.lost_messages() is True  # back: events sent meanwhile are gone
        assert await server.lost_messages() is False

        # Restarted between two looks: never seen down, but a new run_id.
        await asyncio.to_thread(stack.stop, [redis])
        redis = await asyncio.to_thread(stack.start_redis, url, tmp_path / "c")
        assert await server.lost_messages() is True
    finally:
        await server.close()
        await asyncio.to_thread(stack.stop, [redis])
