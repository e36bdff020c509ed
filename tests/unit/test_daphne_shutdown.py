"""patches.daphne: on SIGTERM every consumer is cancelled and waited for, even while Daphne still tracks a
connection that has no application instance (the case where Daphne 4.2.3's own method raises KeyError)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from core import stack
from patches.daphne import kill_all_applications


async def test_every_consumer_is_cancelled_and_waited_for_despite_connections_without_one() -> None:
    cleaned: list[int] = []

    async def consumer(n: int) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01 * n)  # cleanup that takes a while, as a Redis call does
            cleaned.append(n)
            raise

    tasks = [asyncio.create_task(consumer(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    finished: asyncio.Task[None] = asyncio.create_task(asyncio.sleep(0))
    await finished
    connections: dict[object, dict[str, Any]] = {
        object(): {"connected": 1.0},  # no request yet
        object(): {"connected": 1.0, "disconnected": 2.0},  # an upgraded HTTP side, not reaped yet
        object(): {"application_instance": finished},
        **{object(): {"application_instance": task} for task in tasks},
    }
    waited = kill_all_applications(SimpleNamespace(connections=connections))
    done = asyncio.Event()
    waited.addCallback(lambda _: done.set())
    await asyncio.wait_for(done.wait(), 5)
    # Twisted goes on only once all three have cleaned up, not when the first one ends cancelled.
    assert sorted(cleaned) == [1, 2, 3]
    assert all(task.cancelled() for task in tasks)


def test_the_run_command_and_the_tests_start_this_daphne() -> None:
    assert stack.daphne_command("127.0.0.1", 8000)[1:3] == ["-m", "core.daphne"]
