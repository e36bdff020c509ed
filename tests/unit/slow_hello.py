"""A consumer whose handshake stays at work until the test says so: for the handshake admission tests."""

from __future__ import annotations

import asyncio

from channels.generic.websocket import AsyncWebsocketConsumer


class SlowHello(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Accepts, then waits for the test's word before its hello: a handshake still at work."""

    release: asyncio.Event

    async def connect(self) -> None:
        await self.accept()
        await self.release.wait()
        await self.send(text_data='{"type":"hello"}')
