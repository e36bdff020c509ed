"""Tell this process's sockets to resync when the channel layer may have lost their events.

The protocol promises that a terminal event reaches every socket open at the
time. A channel layer can break that promise without any socket noticing:
while Redis restarts or is unreachable, events published to it are gone, and
the pubsub layer's subscriber reconnects and resubscribes by itself about a
second later, so the socket stays open, but missed what was sent meanwhile.

So each Daphne process watches the layer's Redis servers: once a second it asks
each one for its `run_id`. A server that stopped answering and answers again,
or answers with a new run_id (it restarted between two checks), means events
may be lost, and every socket of this process is closed with 4012. Clients
reconnect by themselves (with backoff and jitter) and rebuild their state from
the `hello` snapshot; their new subscriptions are made on the reconnected
server, so nothing falls into a gap.

Events that a publisher had to drop while the server was fine for Daphne (a
worker cut off from Redis, a send that timed out) are handled by the publisher,
which sends a resync to the groups it dropped events for once it can send again
(transport.publisher).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from transport.sockets import Watched

logger = logging.getLogger(__name__)


class Resyncable(Protocol):
    async def resync(self) -> None: ...


def register(socket: Resyncable) -> None:
    """Count an open socket in, and watch the layer's servers while any is open."""
    if _uses_redis():
        _sockets.add(socket)


def unregister(socket: Resyncable) -> None:
    _sockets.discard(socket)


def _uses_redis() -> bool:
    return isinstance(get_channel_layer(), RedisChannelLayer | RedisPubSubChannelLayer)


async def _watch() -> None:
    servers = [Server(url) for url in settings.CHANNELS_REDIS_URLS]
    try:
        while _sockets:
            await asyncio.sleep(settings.LAYER_WATCH_SECONDS)
            changed = [server.url_for_log for server in servers if await server.lost_messages()]
            if changed:
                await resync_all(f"channel layer Redis restarted or came back: {', '.join(changed)}")
    finally:
        for server in servers:
            await server.close()


_sockets: Watched[Resyncable] = Watched("channel-layer watch", _watch)


async def resync_all(reason: str) -> None:
    """Close every socket of this process with 4012, so each client reconnects and resyncs."""
    sockets = list(_sockets)
    logger.warning("%s: asking %s sockets to resync", reason, len(sockets), extra={"event": "socket.resync_all"})
    for socket in sockets:
        with contextlib.suppress(Exception):
            await socket.resync()


class Server:
    """One Redis server of the layer, as seen by a dedicated connection without retries."""

    def __init__(self, url: str) -> None:
        self.url_for_log = url.rsplit("@", 1)[-1]  # no password in logs
        timeout = settings.LAYER_WATCH_SECONDS
        self.redis = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.run_id: str | None = None
        self.down = False

    async def lost_messages(self) -> bool:
        """True when the server has been unreachable or restarted since the last check."""
        run_id = await self._run_id()
        if run_id is None:
            if not self.down:
                logger.warning("channel layer Redis %s does not answer", self.url_for_log)
            self.down = True
            return False
        lost = self.down or (self.run_id is not None and run_id != self.run_id)
        self.down, self.run_id = False, run_id
        return lost

    async def _run_id(self) -> str | None:
        # A connection the server closed fails once; a fresh one then says whether it is up.
        for _ in range(2):
            with contextlib.suppress(Exception):
                info = await self.redis.info("server")
                return str(info["run_id"])
        return None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.aclose()
