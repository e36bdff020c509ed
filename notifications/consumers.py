"""The WebSocket endpoint /ws/jobs/: the protocol of shared/protocol.md, version 1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User

from accounts.credentials import Credential
from core import metrics
from notifications import inbox, notices, protocol, recheck, throttle, watch
from notifications.groups import EVERYONE, auth_group, user_group
from notifications.protocol import (
    Cancel,
    ClientMessage,
    NotificationList,
    NotificationRead,
    NotificationReadAll,
    Ping,
    ProtocolError,
    Retry,
    Submit,
)
from notifications.publish import publisher
from tasks import kinds, services
from tasks.errors import RateLimited, ServiceError

logger = logging.getLogger(__name__)


class JobsConsumer(AsyncWebsocketConsumer):
    group: str | None = None
    audience: tuple[str, ...] = ()  # the notice groups joined: everyone and the user's auth groups
    group_ids: list[int]  # the user's auth groups when the socket opened
    user: User
    strikes: deque[float] | None = None  # times of recent rate_limited answers; made on the first (memory per socket)
    counted = False
    released = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # Daphne cancels every consumer when it shuts down (SIGTERM) and sends
            # no websocket.disconnect: give the connection slot back now, or the
            # user's count keeps it for CONNECTION_STALE_SECONDS and a redeploy
            # can refuse a user with many tabs (core/daphne.py makes Daphne wait).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._release()
            raise

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch runs close_old_connections on its one database
        # thread before every handler: a thread hop per message, which made it
        # the bottleneck of fan-out (docs/benchmarks.md). This consumer touches
        # the ORM only through database_sync_to_async, which closes stale
        # connections itself on that thread, so the hop buys nothing here.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # The protocol allows "accepted and closed at once with 4401", which
            # tells a client to log in again rather than retry.
            await self.accept()
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        if not await throttle.open_connection(user.pk, self.channel_name):
            await self.accept()
            metrics.rate_limited()
            await self._error("rate_limited", "Too many open connections for this user.", details={"retry_after": 30})
            await self.close(code=protocol.CLOSE_POLICY)
            return
        self.counted = True
        publisher.bind_loop(asyncio.get_running_loop())
        # Join the user's stream before taking the snapshot, so no event that
        # happens meanwhile is missed; the client merges by seq.
        self.group = user_group(user.pk)
        metrics.connection_opened()  # closed in disconnect, under the same `self.group` condition
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._join_audience()
        await self.accept()
        await self.send(text_data=await self._hello())
        watch.register(self)
        recheck.register(self)
        via = "token" if self.scope.get("auth_token_id") else "session"
        logger.info("socket opened: user=%s via %s", user.pk, via, extra={"event": "socket.opened", "user_id": user.pk})

    async def disconnect(self, code: int) -> None:
        user_id = getattr(self.scope.get("user"), "pk", None)
        logger.info(
            "socket closed: user=%s code=%s",
            user_id,
            code,
            extra={"event": "socket.closed", "user_id": user_id, "code": code},
        )
        await self._release()

    async def _release(self) -> None:
        """Leave every group and give back the connection slot; once, whichever way the socket ends."""
        if self.released:
            return
        self.released = True
        watch.unregister(self)
        recheck.unregister(self)
        if self.group is not None:
            metrics.connection_closed()
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for group in self.audience:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.counted:
            await throttle.close_connection(self.user.pk, self.channel_name)
            await throttle.forget_connection_messages(self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        retry_after = await throttle.message_allowed(self.channel_name)
        if retry_after is not None:
            # Read the request_id even so, so that a client waiting on its answer gets it
            # (a parse per refused frame, and at most RATE_LIMIT_STRIKES of them before 4008).
            request_id = protocol.request_id_of(text_data) if text_data is not None else None
            await self._rate_limited("Too many messages on this connection.", retry_after, request_id)
            return
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

    async def notice_broadcast(self, event: dict[str, Any]) -> None:
        """A notice to a group this socket joined: the notice, then this user's notification of it.

        Only if the notice addressed this user when it was sent, which is when their
        notification of it was made (notifications.notices). Sockets join their auth
        groups when they connect, so a user removed from a group since is still in
        its channel group: without a notification, they are sent nothing.
        """
        try:
            created = await database_sync_to_async(inbox.created_for_notice)(self.user.pk, event["notice_id"])
        except Exception:
            # Whether it addressed this user is unknown: show nothing (the next hello will, if so).
            logger.exception("user %s: could not check notice %s", self.user.pk, event["notice_id"])
            return
        if created is None:
            return
        await self.send(text_data=event["text"])
        await self.send(text_data=protocol.dumps(created))

    async def notification_created(self, event: dict[str, Any]) -> None:
        await self._send_counted(inbox.created_frame, self.user.pk, event["notification"])

    async def notification_unread(self, event: dict[str, Any]) -> None:
        await self._send_counted(inbox.unread_frame, self.user.pk, event["read"], event["read_up_to"])

    async def stream_resync(self, event: dict[str, Any]) -> None:
        """A publisher dropped an event for a group this socket is in (notifications.publish)."""
        await self.resync()

    async def resync(self) -> None:
        """Events for this socket may be lost: close so that the client reconnects and gets a fresh hello."""
        await self.close(code=protocol.CLOSE_RESYNC)

    async def auth_session_ended(self, event: dict[str, Any]) -> None:
        """The session this socket rode on was logged out (in any tab)."""
        if self.scope.get("auth_token_id") is None and self._session_key() == event["session_key"]:
            await self.close(code=protocol.CLOSE_FORBIDDEN)

    async def auth_token_revoked(self, event: dict[str, Any]) -> None:
        if self.scope.get("auth_token_id") == event["token_id"]:
            await self.close(code=protocol.CLOSE_FORBIDDEN)

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """The user was deactivated or deleted: every socket goes."""
        await self.close(code=protocol.CLOSE_FORBIDDEN)

    async def _dispatch(self, message: ClientMessage) -> None:
        request_id = message.request_id
        handler = self._handlers[message.type]
        try:
            await handler(self, message)
        except RateLimited as exc:
            await self._rate_limited(exc.message, (exc.details or {})["retry_after"], request_id)
        except ServiceError as exc:
            await self._error(exc.code, exc.message, request_id, exc.details)
        except Exception:
            # The client gets an id to quote, never the exception; the log has both,
            # and the request_id the client knows its message by.
            error_id = uuid.uuid4().hex[:12]
            context = {"event": "socket.error", "error_id": error_id, "request_id": request_id, "user_id": self.user.pk}
            quoted = f" (request_id {request_id!r})" if request_id is not None else ""
            logger.exception(
                "error %s%s handling %s for user %s", error_id, quoted, message.type, self.user.pk, extra=context
            )
            message_text = f"The server failed to handle this message (error {error_id})."
            await self._error("internal", message_text, request_id, {"error_id": error_id})

    async def _submit(self, message: Submit) -> None:
        retry_after = await throttle.submit_allowed(self.user.pk)
        if retry_after is not None:
            raise RateLimited("Too many job submissions; wait before submitting again.", retry_after)
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

    async def _notification_list(self, message: NotificationList) -> None:
        reply = await database_sync_to_async(inbox.page)(self.user, message.before, message.limit)
        await self.send(text_data=protocol.dumps(reply))

    async def _notification_read(self, message: NotificationRead) -> None:
        # Answered by notification.unread, to every tab of the user.
        await database_sync_to_async(inbox.mark_read)(self.user, message.id)

    async def _notification_read_all(self, message: NotificationReadAll) -> None:
        await database_sync_to_async(inbox.mark_all_read)(self.user)

    _handlers: dict[str, Callable[[Any, Any], Awaitable[None]]] = {
        "job.submit": _submit,
        "job.cancel": _cancel,
        "job.retry": _retry,
        "ping": _ping,
        "notification.list": _notification_list,
        "notification.read": _notification_read,
        "notification.read_all": _notification_read_all,
    }

    async def _join_audience(self) -> None:
        """Join the groups notices travel on: everyone, and each auth group the user is in now."""
        self.group_ids = await database_sync_to_async(notices.group_ids)(self.user)
        self.audience = (EVERYONE, *(auth_group(group_id) for group_id in self.group_ids))
        for group in self.audience:
            await self.channel_layer.group_add(group, self.channel_name)

    async def _send_counted(self, build: Callable[..., dict[str, Any] | None], *args: Any) -> None:
        """Send a notification frame with the unread count read now, after every earlier commit."""
        try:
            frame = await database_sync_to_async(build)(*args)
        except Exception:
            # A lost count is corrected by the next event or hello; a crashed socket is not.
            logger.exception("user %s: could not count unread notifications", self.user.pk)
            return
        if frame is not None:
            await self.send(text_data=protocol.dumps(frame))

    async def _hello(self) -> str:
        jobs, extension = await database_sync_to_async(_hello_data)(self.user, self.group_ids)
        user = {"id": self.user.pk, "username": self.user.get_username()}
        hello = {
            "type": "hello",
            "protocol": protocol.PROTOCOL_VERSION,
            "user": user,
            "jobs": jobs,
            "kinds": kinds.names(),
            **extension,
        }
        return protocol.dumps(hello)

    async def _rate_limited(self, text: str, retry_after: float, request_id: str | None = None) -> None:
        """Answer rate_limited; a connection that keeps going after repeated warnings is closed (4008)."""
        now = time.monotonic()
        if self.strikes is None:
            self.strikes = deque()
        self.strikes.append(now)
        while self.strikes and self.strikes[0] < now - 60:
            self.strikes.popleft()
        if len(self.strikes) > settings.RATE_LIMIT_STRIKES:
            logger.warning("user %s: closing a connection that ignores rate limits", self.user.pk)
            await self.close(code=protocol.CLOSE_POLICY)
            return
        metrics.rate_limited()
        await self._error("rate_limited", text, request_id, {"retry_after": retry_after})

    def credential(self) -> Credential:
        """What this socket rode in on, for notifications.recheck."""
        return Credential(self.user.pk, self._session_key(), self.scope.get("auth_token_id"))

    async def forbid(self) -> None:
        """The credential ended: close with 4403, so the client asks its user to log in again."""
        await self.close(code=protocol.CLOSE_FORBIDDEN)

    def _session_key(self) -> str | None:
        session = self.scope.get("session")
        return getattr(session, "session_key", None)

    async def _error(
        self, code: str, message: str, request_id: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        await self.send(text_data=protocol.error(code, message, request_id, details))


def _submit(user: User, message: Submit) -> dict[str, Any]:
    job, _ = services.submit(user, message.request_id, message.kind, message.params)
    return protocol.job_payload(job)


def _hello_data(user: User, group_ids: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The job snapshot and the notification extension of hello, in one trip to the database thread."""
    return _snapshot(user), _notification_hello(user, group_ids)


def _snapshot(user: User) -> list[dict[str, Any]]:
    return [protocol.job_payload(job) for job in services.snapshot(user, settings.JOBS_SNAPSHOT_FINISHED)]


def _notification_hello(user: User, group_ids: list[int]) -> dict[str, Any]:
    """The extension fields of hello (docs/protocol.md): unexpired notices and the unread count."""
    active = [protocol.notice_payload(notice) for notice in notices.active_for(group_ids)]
    return {"notices": active, "unread": inbox.unread_count(user.pk)}
