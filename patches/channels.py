"""Channels' consumer dispatch, without its hop to the database thread; database calls on a pool of threads.

`channels.consumer.AsyncConsumer.dispatch` (4.3) awaits `aclose_old_connections()`
on Channels' one database thread before every handler: a thread hop per message,
which made it the bottleneck of fan-out (docs/benchmarks.md). A consumer that
touches the ORM only through `database_sync_to_async`, which closes stale
connections itself on that thread, gains nothing from the hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from django.conf import settings
from django.db import close_old_connections

T = TypeVar("T")


class DispatchWithoutDatabaseHop:
    """Mix in before a Channels consumer class; a copy of Channels' dispatch minus the hop."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


# --- the database calls of sockets: a pool of threads instead of Channels' one ---------------------

_pool: ThreadPoolExecutor | None = None


def _database_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        threads = settings.DATABASE_THREADS_PER_PROCESS
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="database")
    return _pool


def database_to_async(work: Callable[..., T], *, long: bool = False) -> Callable[..., Awaitable[T]]:
    """`channels.db.database_sync_to_async`, on a pool of DATABASE_THREADS_PER_PROCESS threads.

    Channels runs every such call of a process on one thread (asgiref's thread-sensitive mode):
    while one socket's call waits on the database (a round trip to PostgreSQL, SQLite's write lock),
    every other socket of the process waits behind it. Here each thread keeps its own connection;
    stale ones are closed before and after each call, as Channels does on its thread. `long` work
    (a batch of 10,000 jobs, a bulk action) runs on the event loop's default executor instead, so
    that it never holds a place of the sockets' pool.
    """

    def run(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            return work(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False, executor=None if long else _database_pool())
