"""The operations view's numbers, computed once per interval per process and sent to every staff socket watching.

Staff sockets subscribe with `ops.subscribe`. While any socket of this process
watches, one task computes the numbers every OPS_INTERVAL_SECONDS (a few
aggregate queries, tasks.operations; the broker's queue lengths; the workers
that answered a ping, asked at most every WORKERS_EVERY seconds) and sends the
same `ops.stats` frame to each: the cost does not grow with the number of tabs.
A socket that subscribes gets the latest frame at once, computed now only if
none is fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from gateway import frames
from patches.channels import database_to_async
from tasks import broker, operations
from transport.sockets import Watched

WORKERS_EVERY = 10.0


class Watching(Protocol):
    async def send(self, text_data: str) -> None: ...


@dataclass
class _State:
    """One event loop's latest numbers (a process has one loop; tests have one each)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    frame: str = ""
    made_at: float = 0.0
    workers: list[str] = field(default_factory=list)
    workers_at: float = float("-inf")


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _State] = weakref.WeakKeyDictionary()


def _state() -> _State:
    loop = asyncio.get_running_loop()
    return _states.setdefault(loop, _State())


async def subscribe(socket: Watching) -> None:
    _sockets.add(socket)
    await socket.send(text_data=await latest())


def unsubscribe(socket: Watching) -> None:
    _sockets.discard(socket)


async def latest() -> str:
    """The newest frame, computed now if the last one is older than the interval."""
    state = _state()
    async with state.lock:
        if not state.frame or time.monotonic() - state.made_at >= settings.OPS_INTERVAL_SECONDS:
            state.frame = await _compute(state)
            state.made_at = time.monotonic()
        return state.frame


async def refresh() -> None:
    """Compute the numbers now and send them to every watching socket of this process (a kind was paused)."""
    _state().made_at = float("-inf")
    await _send_to_all(await latest())


async def _send_forever() -> None:
    while _sockets:
        await asyncio.sleep(settings.OPS_INTERVAL_SECONDS)
        await _send_to_all(await latest())


async def _send_to_all(frame: str) -> None:
    for socket in _sockets:  # a snapshot (transport.sockets.Watched)
        with contextlib.suppress(Exception):
            await socket.send(text_data=frame)


_sockets: Watched[Watching] = Watched("operations view", _send_forever)


async def _compute(state: _State) -> str:
    snapshot: dict[str, Any] = await database_to_async(operations.snapshot)(timezone.now())
    queues = await asyncio.to_thread(operations.queues, snapshot["oldest_queued"])
    if time.monotonic() - state.workers_at >= WORKERS_EVERY:
        state.workers = await asyncio.to_thread(broker.workers_online)
        state.workers_at = time.monotonic()
    return frames.ops_stats(snapshot, queues, state.workers)
