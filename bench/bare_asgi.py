"""A bare Channels app, the baseline of bench.idle_connections: one consumer that accepts and idles.

Served by Daphne with core.stack's command line and the service's settings (so
the same channel layer: Channels gives every consumer a channel of its own), but
no authentication, no groups, no database: it accepts, sends a one-field hello
(so a client measures the same handshake + first frame as against the service)
and then does nothing.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.test")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class IdleConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data='{"type":"hello"}')


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/jobs/", IdleConsumer.as_asgi())])})
