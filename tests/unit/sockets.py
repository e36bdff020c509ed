"""Helpers for protocol tests: a WebsocketCommunicator connected as a user."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from gateway.consumers import JobsConsumer


class Socket:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = 3) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.communicator.receive_from(timeout))
        return message

    async def request(self, message: dict[str, Any] | str) -> dict[str, Any]:
        await self.send(message)
        return await self.receive()

    async def receive_until(self, type_: str, timeout: float = 3) -> list[dict[str, Any]]:
        """Every message up to and including the first of `type_`."""
        messages = [await self.receive(timeout)]
        while messages[-1]["type"] != type_:
            messages.append(await self.receive(timeout))
        return messages

    async def nothing_more(self) -> bool:
        return bool(await self.communicator.receive_nothing(timeout=0.3))


@asynccontextmanager
async def connected(user: User) -> AsyncIterator[tuple[Socket, dict[str, Any]]]:
    """A socket of `user`, and the hello it received."""
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    communicator.scope["user"] = user
    connected_, _ = await communicator.connect()
    assert connected_
    socket = Socket(communicator)
    try:
        yield socket, await socket.receive()
    finally:
        await communicator.disconnect()


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 5) -> int:
    """Skip frames until the server closes the socket; its close code."""
    async with asyncio.timeout(timeout):
        while True:
            output = await communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return int(output.get("code", 1000))
