"""One daemon thread per process that runs callbacks at monotonic deadlines.

Used for what must happen while a job's own code is busy or quiet: the
trailing progress flush (tasks.progress) and the heartbeat (tasks.liveness).
Callbacks touch the ORM, so the thread closes stale connections around each.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class FlushTimer:
    """One daemon thread per process that runs callbacks at monotonic deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = 0
        self._wakeup = threading.Condition()
        self._pid = 0

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        with self._wakeup:
            if self._pid != os.getpid():  # first use, or first use after a fork
                self._pid = os.getpid()
                self._heap.clear()
                threading.Thread(target=self._run, name="progress-flush", daemon=True).start()
            self._counter += 1
            heapq.heappush(self._heap, (when, self._counter, callback))
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            callback = self._next_due()
            # Closing a stale connection can fail too (it asks the database whether the connection is in
            # autocommit): nothing may end this thread, or no heartbeat or trailing flush of the process
            # would ever run again.
            try:
                close_old_connections()
                callback()
            except Exception:
                logger.exception("timed callback failed")
            try:
                close_old_connections()
            except Exception:
                logger.exception("closing the timer thread's database connections failed")

    def _next_due(self) -> Callable[[], None]:
        with self._wakeup:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    return heapq.heappop(self._heap)[2]
                self._wakeup.wait(self._heap[0][0] - now if self._heap else None)


flush_timer = FlushTimer()
