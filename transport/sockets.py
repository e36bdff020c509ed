"""The open sockets of this process that a periodic task looks after (transport.watch, gateway.recheck)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

Socket = TypeVar("Socket")


class Watched(Generic[Socket]):
    """A weak set of open sockets, and the task that looks after them while there are any.

    The task starts with the first socket added, once per event loop (a
    redis.asyncio client belongs to one loop; tests run many), and `run`
    returns once the set is empty: a process with no sockets does no work.
    """

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self.run = run
        self._sockets: weakref.WeakSet[Socket] = weakref.WeakSet()  # a socket that is gone is forgotten
        self._tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )

    def add(self, socket: Socket) -> None:
        self._sockets.add(socket)
        loop = asyncio.get_running_loop()
        task = self._tasks.get(loop)
        if task is None or task.done():
            self._tasks[loop] = loop.create_task(self.run(), name=self.name)

    def discard(self, socket: Socket) -> None:
        self._sockets.discard(socket)

    def __contains__(self, socket: object) -> bool:
        return socket in self._sockets

    def __len__(self) -> int:
        return len(self._sockets)

    def __iter__(self) -> Iterator[Socket]:
        """A snapshot: sockets may close while the caller awaits."""
        return iter(list(self._sockets))
