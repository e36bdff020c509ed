"""An ASGI application for test_daphne_stops_accepting_while_handshakes_wait.py, served by core.daphne:
gateway.admission around a handshake that takes HANDSHAKE_SECONDS before its hello; each connection's
arrival in the application and its hello are appended to the file TRACE_FILE names."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from gateway.admission import HandshakeAdmission

HANDSHAKE_SECONDS = 1.0


def trace(event: str, scope: dict[str, Any]) -> None:
    with open(os.environ["TRACE_FILE"], "a") as out:
        out.write(f"{event} {scope['path']}\n")


async def slow_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await asyncio.sleep(HANDSHAKE_SECONDS)
    trace("hello", scope)
    await send({"type": "websocket.send", "text": "hello"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


admitted = HandshakeAdmission(slow_hello)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    trace("arrived", scope)  # Daphne accepted the connection and read its request
    await admitted(scope, receive, send)
