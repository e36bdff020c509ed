"""How kombu's Redis transport lays out a queue in Redis, for the reconciler to read (tasks.broker).

kombu keeps no public API for "which task ids are waiting or delivered": its
Redis transport (kombu/transport/redis.py, Channel) stores a queue as one list
per priority step, named `queue` for step 0 and `queue` + `sep` + step for the
others, each item a JSON message whose headers carry the task id; a message a
worker holds but has not acknowledged sits in the `unacked` hash as a JSON list
whose first item is that message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kombu.transport.redis import PRIORITY_STEPS, Channel

UNACKED_KEY: str = Channel.unacked_key
PRIORITY_SEPARATOR: str = Channel.sep


def queue_keys(queue: str) -> Iterator[str]:
    """The Redis lists that hold the waiting messages of `queue`, one per priority step."""
    for step in PRIORITY_STEPS:
        yield queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"


def task_id(message: bytes | str) -> str | None:
    """The task id in a queued message's headers."""
    return _task_id(json.loads(message))


def unacked_task_id(entry: bytes | str) -> str | None:
    """The task id of an entry of the unacked hash."""
    return _task_id(json.loads(entry)[0])


def _task_id(message: Any) -> str | None:
    headers = message.get("headers") if isinstance(message, dict) else None
    value = headers.get("id") if isinstance(headers, dict) else None
    return value if isinstance(value, str) else None
