"""transport.publisher: one long-lived loop per process sends events in order, never blocking the caller."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import get_channel_layer

from transport.publisher import FRAME_TYPE, Publisher


async def joined_channel(group: str) -> str:
    layer = get_channel_layer()
    channel: str = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def test_events_from_worker_threads_arrive_in_order_on_the_bound_loop() -> None:
    publisher = Publisher()
    publisher.bind_loop(asyncio.get_running_loop())
    channel = await joined_channel("user.1")

    def send_all() -> None:
        for n in range(50):
            publisher.send("user.1", f'{{"n":{n}}}')

    sender = threading.Thread(target=send_all)
    sender.start()
    await asyncio.to_thread(sender.join)
    layer = get_channel_layer()
    received = [await asyncio.wait_for(layer.receive(channel), 2) for _ in range(50)]
    assert received == [{"type": FRAME_TYPE, "text": f'{{"n":{n}}}'} for n in range(50)]
    assert publisher.dropped == 0
    publisher.reset()


async def test_a_burst_of_sends_wakes_the_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    publisher = Publisher()
    publisher.bind_loop(loop)
    channel = await joined_channel("user.1")
    wakes = []
    wake = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakes.append(callback)
        return wake(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    for n in range(20):  # the loop cannot run meanwhile: one wake-up takes them all
        publisher.send("user.1", f'{{"n":{n}}}')
    layer = get_channel_layer()
    received = [await asyncio.wait_for(layer.receive(channel), 2) for _ in range(20)]
    assert received == [{"type": FRAME_TYPE, "text": f'{{"n":{n}}}'} for n in range(20)]
    assert len(wakes) == 1
    publisher.send("user.1", "{}")  # after the loop took the burst, a send wakes it again
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": FRAME_TYPE, "text": "{}"}
    assert len(wakes) == 2
    publisher.reset()


async def test_no_send_is_left_waiting_when_threads_race_the_loop() -> None:
    publisher = Publisher()
    publisher.bind_loop(asyncio.get_running_loop())
    channel = await joined_channel("user.1")

    def send_many(thread: int) -> None:
        for n in range(300):
            publisher.send("user.1", f"{thread}:{n}")

    senders = [threading.Thread(target=send_many, args=(thread,)) for thread in range(3)]
    for sender in senders:
        sender.start()
    layer = get_channel_layer()
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["text"] for _ in range(900)]
    for sender in senders:
        await asyncio.to_thread(sender.join)
    for thread in range(3):  # every send arrived, each thread's in its order
        assert [text for text in received if text.startswith(f"{thread}:")] == [f"{thread}:{n}" for n in range(300)]
    assert publisher.dropped == 0
    publisher.reset()


async def test_only_the_group_receives(settings: Any) -> None:
    publisher = Publisher()
    publisher.bind_loop(asyncio.get_running_loop())
    mine, theirs = await joined_channel("user.1"), await joined_channel("user.2")
    publisher.send("user.1", "{}")
    layer = get_channel_layer()
    assert await asyncio.wait_for(layer.receive(mine), 2) == {"type": FRAME_TYPE, "text": "{}"}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(theirs), 0.2)
    publisher.reset()


def test_without_a_server_loop_it_starts_its_own_thread_and_flushes() -> None:
    publisher = Publisher()
    publisher.send("user.1", "{}")
    assert publisher.flush(timeout=2)
    assert publisher.sent == 1
    publisher.reset()


class _StuckLayer:
    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await asyncio.sleep(3600)


def test_a_stuck_channel_layer_drops_events_after_the_timeout_and_never_blocks_the_caller(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PUBLISH_TIMEOUT = 0.05
    monkeypatch.setattr("transport.publisher.get_channel_layer", lambda: _StuckLayer())
    publisher = Publisher()
    for _ in range(3):
        publisher.send("user.1", "{}")  # returns at once even though every send hangs
    assert publisher.flush(timeout=5)
    assert (publisher.sent, publisher.dropped) == (0, 3)
    publisher.reset()


def test_at_exit_a_stopped_server_loop_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daphne's loop has stopped when exit handlers run: close() must not wait on it (it waited out its
    whole timeout at every shutdown)."""
    loop = asyncio.new_event_loop()
    publisher = Publisher()
    publisher.bind_loop(loop)  # bound, never run again: as Daphne's loop after it stopped

    def no_waiting(*args: Any) -> Any:
        raise AssertionError("flush waited on a loop that no longer runs")

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", no_waiting)
    assert publisher.flush(timeout=60)  # nothing was queued
    monkeypatch.undo()
    publisher.reset()
    loop.run_until_complete(asyncio.sleep(0.01))  # let the reset stop the drain task it scheduled
    loop.close()
