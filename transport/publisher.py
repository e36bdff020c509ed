"""The one place that sends to the channel layer: ready frames and control messages, to groups.

It knows no app: callers (the gateway's subscribers to domain events) hand it
a group name and either a finished client frame (`send`) or a channel-layer
message for the consumers (`send_message`).

Workers and Daphne publish from synchronous code (a Celery task, an ORM
transaction). The Channels docs show `async_to_sync(layer.group_send)` per
event, which builds an event loop, a thread and Redis connections each time
(about 1.9 ms per event measured here). Instead every process keeps one
long-lived event loop that owns the layer and drains a bounded queue:

* in Daphne, the server's own loop (bound by the consumer on connect), so
  publishing shares the connections the consumers already hold;
* elsewhere (Celery workers, management commands), a daemon thread started
  on first use and restarted after a fork.

`send` costs the caller one thread-safe enqueue. Events are sent in the order
they were published. If Redis is slow or down, each send gives up after
PUBLISH_TIMEOUT and the event is dropped: the database holds the job's state.
The publisher remembers which groups lost an event and, as soon as a send
succeeds again, tells those groups' sockets to resync (`stream.resync`: they
close with 4012, and their clients reconnect and rebuild from `hello`).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from telemetry import metrics
from transport.groups import EVERYONE

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
FRAME_TYPE = "client.frame"  # a finished frame for the client: the consumer's client_frame sends it as it is
RESYNC_TYPE = "stream.resync"  # the consumer's stream_resync closes with 4012
# Past this many groups that lost events, one resync to everyone is cheaper.
MAX_RESYNC_GROUPS = 1_000
Message = dict[str, Any]


@dataclass
class _Target:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, Message]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    thread: threading.Thread | None = None  # set when the publisher runs the loop itself
    drain: asyncio.Task[None] | None = None
    # Sends waiting for the loop to take them, and whether it has been woken to: a burst of sends (a
    # transition's event and its notification) wakes the loop once, not once each (Publisher.send_message).
    waiting: collections.deque[tuple[str, Message]] = field(default_factory=collections.deque)
    woken: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usable(self) -> bool:
        return not self.loop.is_closed()


class Publisher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: _Target | None = None
        self._pid = os.getpid()
        self.sent = 0
        self.dropped = 0
        self._last_warning = 0.0
        # Groups that lost an event and are owed a resync. Touched only on the publishing loop.
        self._owed: set[str] = set()

    def send(self, group: str, text: str) -> None:
        """Queue one pre-serialised client frame for every socket in `group`. Never blocks."""
        self.send_message(group, {"type": FRAME_TYPE, "text": text})

    def send_message(self, group: str, message: Message) -> None:
        """Queue a channel-layer message for every consumer in `group` (a control message). Never blocks."""
        target = self._current_target()
        with target.lock:
            target.waiting.append((group, message))
            if target.woken:
                return  # the loop takes this one with the others when it runs _take
            target.woken = True
        try:
            # Waking a loop costs a write to its self-pipe and a thread switch, paid once per burst.
            target.loop.call_soon_threadsafe(self._take, target)
        except RuntimeError:  # the loop closed between the check and the call: nobody to resync with
            with target.lock:
                lost, target.woken = len(target.waiting), False
                target.waiting.clear()
            for _ in range(lost):
                self._drop("event loop closed")

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish from this (server) loop from now on. Called from the consumer, cheap when already bound."""
        target = self._target
        if target is not None and target.loop is loop:
            return
        with self._lock:
            old, self._target = self._target, self._start_drain(_Target(loop=loop))
        if old is not None:
            _retire(old, send_queued=True)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until queued events are sent; only from outside the publishing loop (tests, exit)."""
        target = self._target
        if target is None or not target.usable() or _running_loop() is target.loop:
            return True
        if not target.loop.is_running():
            # Daphne's loop, stopped before exit handlers run: nothing would drain the queue, so waiting
            # out the timeout only delayed every shutdown by it.
            return target.queue.empty()
        future = asyncio.run_coroutine_threadsafe(target.queue.join(), target.loop)
        try:
            future.result(timeout)
        except Exception:
            return False
        return True

    def reset(self) -> concurrent.futures.Future[None] | None:
        """Stop draining and forget the loop (tests: each test has its own event loop).

        Returns the future of the shutdown, for a caller inside that loop to await.
        """
        with self._lock:
            old, self._target = self._target, None
        if old is None:
            return None
        done = _retire(old, send_queued=False)
        if done is not None and old.thread is not None and old.thread is not threading.current_thread():
            old.thread.join(timeout=1)
        return done

    def close(self) -> None:
        """Send what is queued, then stop (at process exit)."""
        self.flush()
        self.reset()

    def _current_target(self) -> _Target:
        target = self._target
        if target is not None and target.usable() and self._pid == os.getpid():
            return target
        with self._lock:
            if self._target is None or not self._target.usable() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._target = self._start_thread()
            return self._target

    def _start_thread(self) -> _Target:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="publisher", daemon=True)
        thread.start()
        return self._start_drain(_Target(loop=loop, thread=thread))

    def _start_drain(self, target: _Target) -> _Target:
        def create() -> None:
            target.drain = target.loop.create_task(self._drain(target.queue))

        target.loop.call_soon_threadsafe(create)
        return target

    def _take(self, target: _Target) -> None:
        """On the loop: move every waiting send to the queue, in order. A send after the flag is cleared
        wakes the loop again, so none is left waiting."""
        with target.lock:
            target.woken = False
            taken = list(target.waiting)
            target.waiting.clear()
        for group, message in taken:
            try:
                target.queue.put_nowait((group, message))
            except asyncio.QueueFull:
                self._drop("queue full", group)

    async def _drain(self, queue: asyncio.Queue[tuple[str, Message]]) -> None:
        layer = get_channel_layer()
        assert layer is not None, "CHANNEL_LAYERS is not configured"
        timeout = settings.PUBLISH_TIMEOUT
        while True:
            group, message = await queue.get()
            started = time.perf_counter()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                # a cancellation that lands as the send completes, and the drain
                # would then never stop.
                async with asyncio.timeout(timeout):
                    await layer.group_send(group, message)
                self.sent += 1
                metrics.event_published(time.perf_counter() - started)
            except Exception as exc:
                self._drop(f"{type(exc).__name__}: {exc}", group)
            else:
                if self._owed:
                    await self._send_resyncs(layer)
            finally:
                queue.task_done()

    async def _send_resyncs(self, layer: Any) -> None:
        """Sends work again: tell every group that lost an event to resync; on a failure they stay owed."""
        groups = [EVERYONE] if len(self._owed) > MAX_RESYNC_GROUPS else sorted(self._owed)
        try:
            for group in groups:
                async with asyncio.timeout(settings.PUBLISH_TIMEOUT):
                    await layer.group_send(group, {"type": RESYNC_TYPE})
                self._owed.discard(group)
        except Exception:
            return  # tried again after the next send that works
        self._owed.clear()  # also when everyone was told at once
        logger.info("publisher: %s group(s) told to resync after dropped events", len(groups))

    def _drop(self, reason: str, group: str | None = None) -> None:
        if group is not None:
            self._owed.add(group)
        self.dropped += 1
        metrics.event_dropped()
        # One line per minute at most: a Redis outage must not flood the logs.
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            logger.warning("publisher dropped events (%s so far): %s", self.dropped, reason)


def _retire(target: _Target, *, send_queued: bool) -> concurrent.futures.Future[None] | None:
    """Stop a target's drain task, after sending what it holds if asked, and its loop if it owns one."""

    async def stop_draining() -> None:
        if send_queued:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.PUBLISH_TIMEOUT):
                    await target.queue.join()
        if target.drain is not None:
            target.drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await target.drain

    def stop_loop(_: object) -> None:
        with contextlib.suppress(RuntimeError):
            target.loop.call_soon_threadsafe(target.loop.stop)

    if not target.usable():
        return None
    try:
        done = asyncio.run_coroutine_threadsafe(stop_draining(), target.loop)
    except RuntimeError:  # the loop closed meanwhile
        return None
    if target.thread is not None:
        # Only once the drain task is gone, so no task is left pending.
        done.add_done_callback(stop_loop)
    return done


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


publisher = Publisher()
atexit.register(publisher.close)
