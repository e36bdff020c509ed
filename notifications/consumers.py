"""The WebSocket endpoint /ws/jobs/: the protocol of shared/protocol.md, version 1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User

from notifications import protocol
from notifications.groups import user_group
from notifications.protocol import Cancel, ClientMessage, Ping, ProtocolError, Retry, Submit
from notifications.publish import publisher
from tasks import kinds, services
from tasks.errors import ServiceError

logger = logging.getLogger(__name__)


class JobsConsumer(AsyncWebsocketConsumer):
    group: str | None = None
    user: User

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # The protocol allows "accepted and closed at once with 4401", which
            # tells a client to log in again rather than retry.
            await self.accept()
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        publisher.bind_loop(asyncio.get_running_loop())
        # Join the user's stream before taking the snapshot, so no event that
        # happens meanwhile is missed; the client merges by seq.
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=await self._hello())

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._error("unsupported", "Binary frames are not supported; send JSON text frames.")
            return
        # A character is at most 4 bytes in UTF-8: only long texts need encoding to measure.
        if len(text_data) * 4 > protocol.MAX_FRAME_BYTES and len(text_data.encode()) > protocol.MAX_FRAME_BYTES:
            await self.close(code=protocol.CLOSE_TOO_LARGE)
            return
        try:
            message = protocol.parse(text_data)
        except ProtocolError as exc:
            await self._error(exc.code, exc.message, protocol.request_id_of(text_data), exc.details)
            return
        await self._dispatch(message)

    async def job_event(self, event: dict[str, Any]) -> None:
        """A job event from the channel layer, already serialised by the publisher."""
        await self.send(text_data=event["text"])

    async def _dispatch(self, message: ClientMessage) -> None:
        request_id = message.request_id if isinstance(message, Submit) else None
        handler = self._handlers[message.type]
        try:
            await handler(self, message)
        except ServiceError as exc:
            await self._error(exc.code, exc.message, request_id, exc.details)
        except Exception:
            logger.exception("error handling %s for user %s", message.type, self.user.pk)
            await self._error("internal", "The server failed to handle this message.", request_id)

    async def _submit(self, message: Submit) -> None:
        job = await database_sync_to_async(_submit)(self.user, message)
        await self.send(
            text_data=protocol.dumps({"type": "job.accepted", "request_id": message.request_id, "job": job})
        )

    async def _cancel(self, message: Cancel) -> None:
        await database_sync_to_async(services.cancel)(self.user, message.job_id)

    async def _retry(self, message: Retry) -> None:
        await database_sync_to_async(services.retry)(self.user, message.job_id)

    async def _ping(self, message: Ping) -> None:
        await self.send(text_data='{"type":"pong"}')

    _handlers: dict[str, Callable[[Any, Any], Awaitable[None]]] = {
        "job.submit": _submit,
        "job.cancel": _cancel,
        "job.retry": _retry,
        "ping": _ping,
    }

    async def _hello(self) -> str:
        jobs = await database_sync_to_async(_snapshot)(self.user)
        user = {"id": self.user.pk, "username": self.user.get_username()}
        hello = {
            "type": "hello",
            "protocol": protocol.PROTOCOL_VERSION,
            "user": user,
            "jobs": jobs,
            "kinds": kinds.names(),
        }
        return protocol.dumps(hello)

    async def _error(
        self, code: str, message: str, request_id: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        await self.send(text_data=protocol.error(code, message, request_id, details))


def _submit(user: User, message: Submit) -> dict[str, Any]:
    job, _ = services.submit(user, message.request_id, message.kind, message.params)
    return protocol.job_payload(job)


def _snapshot(user: User) -> list[dict[str, Any]]:
    return [protocol.job_payload(job) for job in services.snapshot(user, settings.JOBS_SNAPSHOT_FINISHED)]
