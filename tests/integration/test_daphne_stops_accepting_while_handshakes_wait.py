"""A real Daphne (core.daphne, one handshake in flight at a time): while a handshake waits for its turn,
the process accepts no new connection; a client that connects meanwhile is taken on (its request read)
only once the handshake at work is over, and then gets its hello like the others. Without the switch
(patches.listening), the third connection would reach the application at once and wait there."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from core import stack

pytestmark = [pytest.mark.integration]


@pytest.fixture
def daphne(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port, trace = stack.free_port(), tmp_path / "trace"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.test",
        "WEBSOCKET_HANDSHAKES_IN_FLIGHT": "1",
        "WEBSOCKET_HANDSHAKE_WAIT_SECONDS": "4",
        "TRACE_FILE": str(trace),
    }
    command = stack.daphne_command("127.0.0.1", port, "--app", "tests.integration.slow_handshakes:application")
    log = (tmp_path / "daphne.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "daphne", 30, process)
        yield f"ws://127.0.0.1:{port}", trace
    finally:
        stack.stop([process])
        log.close()


def traced(trace: Path) -> list[str]:
    return trace.read_text().splitlines() if trace.exists() else []


async def arrived(trace: Path, path: str) -> None:
    while f"arrived {path}" not in await asyncio.to_thread(traced, trace):  # noqa: ASYNC110 (another process's file)
        await asyncio.sleep(0.02)


async def hello(url: str) -> ClientConnection:
    socket = await connect(url, open_timeout=20)
    assert await asyncio.wait_for(socket.recv(), 20) == "hello"
    return socket


async def test_a_connection_made_while_a_handshake_waits_is_taken_on_after_the_one_at_work(
    daphne: tuple[str, Path],
) -> None:
    url, trace = daphne
    first = asyncio.create_task(hello(f"{url}/1"))
    await asyncio.wait_for(arrived(trace, "/1"), 10)
    second = asyncio.create_task(hello(f"{url}/2"))
    await asyncio.wait_for(arrived(trace, "/2"), 10)  # it waits for the first one's place: accepting stops
    third = asyncio.create_task(hello(f"{url}/3"))
    sockets = await asyncio.gather(first, second, third)
    for socket in sockets:
        await socket.close()

    events = traced(trace)
    assert events.index("arrived /3") > events.index("hello /1"), events
    assert sorted(events) == sorted(f"{event} /{n}" for n in (1, 2, 3) for event in ("arrived", "hello"))
