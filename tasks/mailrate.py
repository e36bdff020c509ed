"""The mail provider's rate limit over the whole cluster: at most EMAIL_RATE_PER_MINUTE messages in any
minute (0: no limit), or EMAIL_RATE_LIMIT in another window ("14/second"), whichever worker sends them.

A moving window in Redis (the `limits` library's MovingWindowRateLimiter: one
list of send times per key, checked and added to by one Lua script), on the
rate-limit Redis shared by every process (THROTTLE_REDIS_URL). A sender over the
limit waits until the oldest send of the window has left it, telling its job's
owner ("throttled by the mail rate limit"); if Redis cannot be asked, it sends
(and logs): without Redis there is no broker either, so nothing else is sending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

KEY = "email"
KEY_PREFIX = "jobs-mail-rate"
# The longest a waiting sender sleeps before it asks again (and reports, so a cancel is seen).
MAX_NAP = 1.0

_lock = threading.Lock()
_limiter: MovingWindowRateLimiter | None = None


def _shared() -> MovingWindowRateLimiter:
    global _limiter
    with _lock:
        if _limiter is None:
            storage = RedisStorage(settings.THROTTLE_REDIS_URL, key_prefix=KEY_PREFIX, wrap_exceptions=True)
            _limiter = MovingWindowRateLimiter(storage)
        return _limiter


def forget() -> None:
    """Drop the limiter, so the next send builds one from the settings now (tests change them)."""
    global _limiter
    with _lock:
        _limiter = None


def wait_for_turn(waiting: Callable[[float], None]) -> None:
    """Return when one more message fits in the window's budget, taking it; meanwhile call `waiting(seconds)`
    about once a second with the time left (it may raise, e.g. JobCancelled)."""
    item = _rate()
    if item is None:
        return
    limiter = _shared()
    while True:
        try:
            if limiter.hit(item, KEY):
                return
            reset_at = limiter.get_window_stats(item, KEY).reset_time
        except Exception as exc:  # Redis unreachable: send, as every other limit here fails open
            logger.warning("the mail rate limit cannot be checked (%s); sending", exc)
            return
        left = max(0.01, reset_at - time.time())
        waiting(left)
        time.sleep(min(left, MAX_NAP))


def _rate() -> RateLimitItem | None:
    if settings.EMAIL_RATE_LIMIT:
        return parse(settings.EMAIL_RATE_LIMIT)
    return RateLimitItemPerMinute(settings.EMAIL_RATE_PER_MINUTE) if settings.EMAIL_RATE_PER_MINUTE else None
