"""Abuse limits for the socket: submissions per user, messages per connection, connections per user.

Rates use the `limits` library: submissions with Redis storage, so the limit
holds across every Daphne process; messages per connection in memory, since a
connection lives in one process. Open connections are a count, not a rate,
which `limits` does not model: they are a Redis sorted set per user (member:
channel name, score: last seen), refreshed by each process's periodic
re-check, so a process that died without cleaning up stops counting after
CONNECTION_STALE_SECONDS.

If Redis is unreachable the limits fail open (and log): the channel layer is
down then too, and refusing every user would not make the service safer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

logger = logging.getLogger(__name__)

KEY_PREFIX = "jobs:throttle"


@dataclass
class _Limiters:
    shared: SlidingWindowCounterRateLimiter
    local: SlidingWindowCounterRateLimiter
    redis: aioredis.Redis


# Clients of redis.asyncio belong to one event loop: one set per loop.
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limiters] = weakref.WeakKeyDictionary()


def _limiters() -> _Limiters:
    loop = asyncio.get_running_loop()
    limiters = _by_loop.get(loop)
    if limiters is None:
        url = settings.THROTTLE_REDIS_URL
        storage = RedisStorage(f"async+{url}", implementation="redispy", key_prefix=KEY_PREFIX)
        limiters = _Limiters(
            shared=SlidingWindowCounterRateLimiter(storage),
            local=SlidingWindowCounterRateLimiter(MemoryStorage()),
            redis=aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1),
        )
        _by_loop[loop] = limiters
    return limiters


def submissions_per_minute() -> RateLimitItem:
    return RateLimitItemPerMinute(settings.RATE_LIMIT_SUBMITS_PER_MINUTE)


def messages_per_second() -> RateLimitItem:
    return RateLimitItemPerSecond(settings.RATE_LIMIT_MESSAGES_PER_SECOND)


async def _hit(limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, key: str) -> float | None:
    """None if allowed; otherwise seconds until it would be."""
    try:
        if await limiter.hit(item, key):
            return None
        stats = await limiter.get_window_stats(item, key)
    except Exception as exc:
        logger.warning("rate limit check failed, allowing: %s", exc)
        return None
    return max(0.1, round(stats.reset_time - time.time(), 1))


async def submit_allowed(user_id: int) -> float | None:
    """Count one job submission of the user; None if allowed, else retry_after seconds."""
    return await _hit(_limiters().shared, submissions_per_minute(), f"submit:{user_id}")


async def message_allowed(channel_name: str) -> float | None:
    """Count one message on a connection; None if allowed, else retry_after seconds."""
    return await _hit(_limiters().local, messages_per_second(), f"message:{channel_name}")


async def forget_connection_messages(channel_name: str) -> None:
    await _limiters().local.clear(messages_per_second(), f"message:{channel_name}")


def _key_ttl() -> int:
    return int(settings.CONNECTION_STALE_SECONDS) + 60


def _connections_key(user_id: int) -> str:
    return f"{KEY_PREFIX}:connections:{user_id}"


async def open_connection(user_id: int, channel_name: str) -> bool:
    """Register a connection; False (and not registered) when the user has too many open."""
    key, now = _connections_key(user_id), time.time()
    try:
        async with _limiters().redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, 0, now - settings.CONNECTION_STALE_SECONDS)
            pipe.zadd(key, {channel_name: now})
            pipe.zcard(key)
            pipe.expire(key, _key_ttl())
            _, _, count, _ = await pipe.execute()
    except Exception as exc:
        logger.warning("connection count failed, allowing: %s", exc)
        return True
    if count > settings.RATE_LIMIT_CONNECTIONS_PER_USER:
        await close_connection(user_id, channel_name)
        return False
    return True


async def refresh_connections(channels_by_user: dict[int, list[str]]) -> None:
    """Mark these connections as still open, in one round trip; they count for CONNECTION_STALE_SECONDS more."""
    now = time.time()
    try:
        async with _limiters().redis.pipeline(transaction=False) as pipe:
            for user_id, channel_names in channels_by_user.items():
                if channel_names:
                    key = _connections_key(user_id)
                    pipe.zadd(key, dict.fromkeys(channel_names, now), xx=True)
                    # Or a user whose sockets all opened long ago would lose the key, and count zero.
                    pipe.expire(key, _key_ttl())
            await pipe.execute()
    except Exception as exc:
        logger.warning("connection refresh failed: %s", exc)


async def close_connection(user_id: int, channel_name: str) -> None:
    try:
        await _limiters().redis.zrem(_connections_key(user_id), channel_name)
    except Exception as exc:
        logger.warning("connection release failed: %s", exc)
