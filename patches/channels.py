"""Channels' consumer dispatch, without its hop to the database thread.

`channels.consumer.AsyncConsumer.dispatch` (4.3) awaits `aclose_old_connections()`
on Channels' one database thread before every handler: a thread hop per message,
which made it the bottleneck of fan-out (docs/benchmarks.md). A consumer that
touches the ORM only through `database_sync_to_async`, which closes stale
connections itself on that thread, gains nothing from the hop.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name


class DispatchWithoutDatabaseHop:
    """Mix in before a Channels consumer class; a copy of Channels' dispatch minus the hop."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
