"""The WebSocket endpoint /ws/jobs/: the protocol of shared/protocol.md, and its extensions (docs/protocol.md).

Client messages are parsed by gateway.protocol and answered by the `on_<type>`
method its MESSAGE_TYPES table names; the other handlers receive channel-layer
messages from gateway.subscribers (a finished frame, a notice, a notification,
a credential that ended). Every frame sent is built by gateway.frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User

from accounts import groups
from accounts.credentials import Credential
from gateway import frames, ops, protocol, recheck, throttle
from gateway.protocol import (
    BatchFollow,
    BatchSubmit,
    BatchUnfollow,
    Cancel,
    ClientMessage,
    JobBulk,
    JobFilter,
    JobGet,
    JobList,
    JobLogsFollow,
    JobLogsUnfollow,
    KindList,
    NotificationList,
    NotificationRead,
    NotificationReadAll,
    OpsKindPause,
    OpsKindResume,
    OpsSubscribe,
    OpsUnsubscribe,
    Ping,
    ProtocolError,
    Retry,
    ScheduleCreate,
    ScheduleDelete,
    ScheduleList,
    SchedulePause,
    ScheduleResume,
    Submit,
)
from notifications import inbox, notices
from patches.channels import DispatchWithoutDatabaseHop, database_to_async
from schedules import services as schedules
from schedules.models import Schedule
from tasks import batches, history, kinds, limits, logs, services
from tasks.errors import BadMessage, InvalidParams, JobConflict, RateLimited, ServiceError
from tasks.models import BATCH_KIND, Job
from telemetry import metrics
from transport import watch
from transport.groups import EVERYONE, auth_group, batch_group, job_log_group, user_group
from transport.publisher import publisher

logger = logging.getLogger(__name__)

MAX_FOLLOWED = 20  # jobs whose logs one connection follows at once, and batches it follows
# Work a socket started and does not wait for (handing out a batch's children); it outlives the socket.
_BACKGROUND: set[asyncio.Future[Any]] = set()


@dataclass
class PendingBatch:
    """The parts of a batch.submit received so far (it continues in later frames; docs/protocol.md).
    Title and mode are read from the last part."""

    request_id: str
    jobs: list[tuple[str, dict[str, Any]]]


class JobsConsumer(DispatchWithoutDatabaseHop, AsyncWebsocketConsumer):
    group: str | None = None
    audience: tuple[str, ...] = ()  # the notice groups joined: everyone and the user's auth groups
    group_ids: list[int]  # the user's auth groups when the socket opened
    user: User
    strikes: deque[float] | None = None  # times of recent rate_limited answers; made on the first (memory per socket)
    following: set[str] | None = None  # jobs whose log lines this socket follows (job.logs.follow)
    batches: set[str] | None = None  # batches whose children's events this socket gets (batch.follow)
    pending_batch: PendingBatch | None = None  # a batch.submit whose parts are still coming
    # Batch progress held back, and when each batch's last progress frame went (batch_progress).
    batch_frames: dict[str, str] | None = None
    batch_sent: dict[str, float] | None = None
    counted = False
    released = False
    closing = False  # this server closed the socket (close): no client frame is acted on after that

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # Daphne cancels every consumer when it shuts down (SIGTERM) and sends
            # no websocket.disconnect: give the connection slot back now, or the
            # user's count keeps it for CONNECTION_STALE_SECONDS and a redeploy
            # can refuse a user with many tabs (patches/daphne.py makes Daphne wait).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._release()
            raise

    # --- the connection ------------------------------------------------------------------------

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

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code=code, reason=reason)

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
        ops.unsubscribe(self)
        if self.group is not None:
            metrics.connection_closed()
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for group in self.audience:
            await self.channel_layer.group_discard(group, self.channel_name)
        for job_id in list(self.following or ()):
            await self._unfollow(job_id)
        for batch_id in list(self.batches or ()):
            await self.channel_layer.group_discard(batch_group(batch_id), self.channel_name)
        self.pending_batch = None
        if self.counted:
            await throttle.close_connection(self.user.pk, self.channel_name)
            await throttle.forget_connection_messages(self.channel_name)

    async def _join_audience(self) -> None:
        """Join the groups notices travel on: everyone, and each auth group the user is in now."""
        read_with_the_token = self.scope.get("auth_group_ids")  # accounts.websocket: no trip of its own
        if read_with_the_token is not None:
            self.group_ids = read_with_the_token
        else:
            self.group_ids = await database_to_async(groups.group_ids)(self.user.pk)
        self.audience = (EVERYONE, *(auth_group(group_id) for group_id in self.group_ids))
        for group in self.audience:
            await self.channel_layer.group_add(group, self.channel_name)

    async def _hello(self) -> str:
        jobs, extension = await database_to_async(_hello_data)(self.user, self.group_ids)
        return frames.hello(self.user, jobs, kinds.names(), extension)

    # --- client messages -------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            # Frames the client sent before it saw our close are not acted on: their answers could not
            # be sent (Daphne drops sends on a closing socket), so a submit would make a job never
            # acknowledged; left alone, the client sends them again after it reconnects.
            return
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
        await self._answer(message)

    async def _answer(self, message: ClientMessage) -> None:
        """Run the message's handler (protocol.MESSAGE_TYPES); a refusal or a failure answers `error`."""
        request_id = message.request_id
        handler = getattr(self, protocol.MESSAGE_TYPES[message.type].handler)
        try:
            await handler(message)
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

    async def on_job_submit(self, message: Submit) -> None:
        retry_after = await throttle.submit_allowed(self.user.pk)
        if retry_after is not None:
            raise RateLimited("Too many job submissions; wait before submitting again.", retry_after)
        job, payload, created = await database_to_async(_submit)(self.user, message)
        await self.send(text_data=frames.accepted(message.request_id, payload))
        if not created:
            return
        if job.kind == BATCH_KIND:
            self._start_batch(payload["id"])  # a job its kind split into a batch (a large email)
        else:
            # Off Channels' one database thread, which every socket of this process waits on.
            self._background(sync_to_async(services.hand_off, thread_sensitive=False)(job))

    async def on_batch_submit(self, message: BatchSubmit) -> None:
        """A batch, in one frame or in parts (offset/continues): created in one transaction when complete."""
        if message.offset == 0:
            retry_after = await throttle.submit_allowed(self.user.pk)
            if retry_after is not None:
                raise RateLimited("Too many job submissions; wait before submitting again.", retry_after)
        jobs = self._batch_parts(message)
        if message.continues:
            await self.send(text_data=frames.batch_part(message.request_id, len(jobs)))
            return
        job, created = await database_to_async(_submit_batch, long=True)(self.user, message, jobs)
        await self.send(text_data=frames.accepted(message.request_id, job))
        if created:
            self._start_batch(job["id"])

    def _start_batch(self, batch_id: str) -> None:
        """Hand out a batch's jobs after the answer, and not awaited: sending 10,000 tasks (about 1 ms each)
        must hold back neither job.accepted nor this socket's next messages."""
        start = database_to_async(batches.start, long=True)(uuid.UUID(batch_id))
        self._background(start)

    def _batch_parts(self, message: BatchSubmit) -> list[tuple[str, dict[str, Any]]]:
        """Every job of the batch so far, this frame's included; a part that does not follow on is refused."""
        part = [(child.kind, child.params) for child in message.jobs]
        pending, self.pending_batch = self.pending_batch, None
        if message.offset == 0:
            jobs = part
        elif pending is None or pending.request_id != message.request_id or len(pending.jobs) != message.offset:
            received = len(pending.jobs) if pending is not None and pending.request_id == message.request_id else 0
            text = f"This part does not follow on: {received} jobs of this batch were received; send offset {received}."
            raise BadMessage(text, {"offset": f"Expected {received}."})
        else:
            jobs = pending.jobs + part
        if len(jobs) > protocol.MAX_BATCH:
            raise InvalidParams("A batch holds at most 10,000 jobs.", {"jobs": "Give 1 to 10,000 jobs."})
        if message.continues:
            self.pending_batch = PendingBatch(message.request_id, jobs)
        return jobs

    async def on_batch_follow(self, message: BatchFollow) -> None:
        """Join the batch's group: its children's own events come to this socket until batch.unfollow."""
        owner_id = self._owner_in("all" if self.user.is_staff else "own")
        job = await database_to_async(history.find)(owner_id, message.job_id)
        if job.kind != BATCH_KIND:
            raise JobConflict("The job is not a batch.")
        batch_id = str(job.pk)
        followed = self.batches if self.batches is not None else set()
        if batch_id not in followed and len(followed) >= MAX_FOLLOWED:
            raise JobConflict(f"A connection follows at most {MAX_FOLLOWED} batches at once.")
        self.batches = followed | {batch_id}
        await self.channel_layer.group_add(batch_group(batch_id), self.channel_name)
        await self.send(text_data=frames.batch_follow(message.request_id, batch_id, following=True))

    async def on_batch_unfollow(self, message: BatchUnfollow) -> None:
        if self.batches and message.job_id in self.batches:
            self.batches.discard(message.job_id)
            await self.channel_layer.group_discard(batch_group(message.job_id), self.channel_name)
        await self.send(text_data=frames.batch_follow(message.request_id, message.job_id, following=False))

    async def on_job_cancel(self, message: Cancel) -> None:
        # A batch cancels its children one by one: off Channels' one database thread.
        await database_to_async(services.cancel, long=True)(self.user, message.job_id)

    async def on_job_retry(self, message: Retry) -> None:
        await database_to_async(services.retry, long=True)(self.user, message.job_id, message.resend_unknown)

    async def on_ping(self, message: Ping) -> None:
        await self.send(text_data=frames.PONG)

    async def on_kind_list(self, message: KindList) -> None:
        await self.send(text_data=frames.kind_list(message.request_id))

    async def on_job_list(self, message: JobList) -> None:
        owner_id = self._owner_in(message.scope)
        await self.send(text_data=await database_to_async(_job_list)(owner_id, message))

    async def on_job_get(self, message: JobGet) -> None:
        owner_id = self._owner_in("all" if self.user.is_staff else "own")
        await self.send(text_data=await database_to_async(_job_detail)(owner_id, message))

    async def on_job_logs_follow(self, message: JobLogsFollow) -> None:
        """Join the job's log group first, then read its last lines: no line falls between (merge by n)."""
        owner_id = self._owner_in("all" if self.user.is_staff else "own")
        job = await database_to_async(history.find)(owner_id, message.job_id)
        job_id = str(job.pk)
        following = self.following if self.following is not None else set()
        if job_id not in following and len(following) >= MAX_FOLLOWED:
            raise JobConflict(f"A connection follows the logs of at most {MAX_FOLLOWED} jobs at once.")
        self.following = following | {job_id}
        await self.channel_layer.group_add(job_log_group(job_id), self.channel_name)
        frame, finished = await database_to_async(_job_logs)(job, message.request_id)
        await self.send(text_data=frame)
        if finished:
            await self._unfollow(job_id)  # nothing more will come

    async def on_job_logs_unfollow(self, message: JobLogsUnfollow) -> None:
        await self._unfollow(message.job_id)

    async def on_ops_subscribe(self, message: OpsSubscribe) -> None:
        self._owner_in("all")  # staff only
        await ops.subscribe(self)

    async def on_ops_unsubscribe(self, message: OpsUnsubscribe) -> None:
        ops.unsubscribe(self)

    async def on_ops_kind_pause(self, message: OpsKindPause) -> None:
        await self._pause_kind(message.kind, True, message.request_id)

    async def on_ops_kind_resume(self, message: OpsKindResume) -> None:
        await self._pause_kind(message.kind, False, message.request_id)

    async def _pause_kind(self, kind: str, paused: bool, request_id: str | None) -> None:
        """Staff only: a paused kind's queued jobs wait; resuming hands them out (tasks.limits)."""
        self._owner_in("all")
        # Resuming may hand out many held jobs: off Channels' one database thread.
        change = database_to_async(limits.set_paused)
        await change(kind, paused, self.user.get_username())
        await self.send(text_data=frames.ops_kind(request_id, kind, paused))
        await ops.refresh()  # this process's staff tabs see it now (the others at their next interval)

    async def on_job_bulk(self, message: JobBulk) -> None:
        owner_id = self._owner_in(message.scope)
        # Many jobs may change: off Channels' one database thread, which every socket of this process shares.
        matched, changed = await database_to_async(_job_bulk, long=True)(owner_id, message)
        await self.send(text_data=frames.job_bulk(message.request_id, matched, changed, message.dry_run))

    async def on_schedule_create(self, message: ScheduleCreate) -> None:
        retry_after = await throttle.submit_allowed(self.user.pk)
        if retry_after is not None:
            raise RateLimited("Too many submissions; wait before making another schedule.", retry_after)
        await self.send(text_data=await database_to_async(_schedule_create)(self.user, message, self.channel_name))

    async def on_schedule_list(self, message: ScheduleList) -> None:
        await self.send(text_data=await database_to_async(_schedule_list)(self.user, message.request_id))

    async def on_schedule_pause(self, message: SchedulePause) -> None:
        await self._change_schedule(schedules.pause, message.schedule_id, message.request_id)

    async def on_schedule_resume(self, message: ScheduleResume) -> None:
        await self._change_schedule(schedules.resume, message.schedule_id, message.request_id)

    async def on_schedule_delete(self, message: ScheduleDelete) -> None:
        await self._change_schedule(schedules.delete, message.schedule_id, message.request_id, deleted=True)

    async def _change_schedule(
        self, change: Callable[..., Schedule], schedule_id: str, request_id: str | None, deleted: bool = False
    ) -> None:
        """Answer this socket; the owner's other sockets hear of it through the channel layer."""
        frame = await database_to_async(_schedule_changed)(
            change, self.user, schedule_id, request_id, self.channel_name, deleted
        )
        await self.send(text_data=frame)

    async def on_notification_list(self, message: NotificationList) -> None:
        page = await database_to_async(inbox.page)(self.user, message.before, message.limit)
        await self.send(text_data=frames.notification_list(page, message.before))

    async def on_notification_read(self, message: NotificationRead) -> None:
        # Answered by notification.unread, to every tab of the user.
        await database_to_async(inbox.mark_read)(self.user, message.id)

    async def on_notification_read_all(self, message: NotificationReadAll) -> None:
        await database_to_async(inbox.mark_all_read)(self.user)

    # --- channel-layer messages (gateway.subscribers, transport) ---------------------------------

    async def client_frame(self, event: dict[str, Any]) -> None:
        """A frame for the client, already serialised by the subscriber that published it."""
        await self.send(text_data=event["text"])

    async def notice_broadcast(self, event: dict[str, Any]) -> None:
        """A notice to a group this socket joined: the notice, then this user's notification of it.

        Only if the notice addressed this user when it was sent, which is when their
        notification of it was made (notifications.notices). Sockets join their auth
        groups when they connect, so a user removed from a group since is still in
        its channel group: without a notification, they are sent nothing.
        """
        notices.forget_unexpired()  # this process's copy of the notices lacks this one (notifications.notices)
        try:
            created = await database_to_async(_notification_of_notice)(self.user.pk, event["notice_id"])
        except Exception:
            # Whether it addressed this user is unknown: show nothing (the next hello will, if so).
            logger.exception("user %s: could not check notice %s", self.user.pk, event["notice_id"])
            return
        if created is None:
            return
        await self.send(text_data=event["text"])
        await self.send(text_data=created)

    async def notification_created(self, event: dict[str, Any]) -> None:
        await self._send_counted(_counted_created, self.user.pk, event["notification"])

    async def notification_unread(self, event: dict[str, Any]) -> None:
        await self._send_counted(_counted_unread, self.user.pk, event["read"], event["read_up_to"])

    async def batch_progress(self, event: dict[str, Any]) -> None:
        """A batch's progress: at most one frame per JOBS_BATCH_PROGRESS_INTERVAL per batch on this socket,
        the latest, however many processes move its children (each coalesces too, tasks.batches)."""
        if self.batch_frames is None or self.batch_sent is None:
            self.batch_frames, self.batch_sent = {}, {}
        batch_id, waiting = event["job_id"], event["job_id"] in self.batch_frames
        self.batch_frames[batch_id] = event["text"]  # frames of one batch arrive in commit order: the last is newest
        if waiting:
            return
        due = self.batch_sent.get(batch_id, 0.0) + settings.JOBS_BATCH_PROGRESS_INTERVAL
        delay = due - time.monotonic()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._flush_batch(batch_id)))
        else:
            await self._flush_batch(batch_id)

    async def _flush_batch(self, batch_id: str) -> None:
        if self.batch_frames is None or self.batch_sent is None or self.released:
            return
        text = self.batch_frames.pop(batch_id, None)
        if text is not None:
            self.batch_sent[batch_id] = time.monotonic()
            await self.send(text_data=text)

    async def schedule_frame(self, event: dict[str, Any]) -> None:
        """A schedule of this user changed; the socket that asked for the change already has its answer."""
        if event["origin"] != self.channel_name:
            await self.send(text_data=event["text"])

    async def job_logs_end(self, event: dict[str, Any]) -> None:
        """The followed job finished, after its last lines: stop following it."""
        await self._unfollow(event["job_id"])

    async def stream_resync(self, event: dict[str, Any]) -> None:
        """A publisher dropped an event for a group this socket is in (transport.publisher)."""
        await self.resync()

    async def auth_ended(self, event: dict[str, Any]) -> None:
        """A credential of this socket's user ended (gateway.subscribers): close if it is this socket's."""
        token_id = self.scope.get("auth_token_id")
        if event["token_id"] is not None:
            ended = token_id == event["token_id"]
        elif event["session_key"] is not None:
            ended = token_id is None and self._session_key() == event["session_key"]
        else:
            ended = True  # the user was deactivated or deleted: every socket goes
        if ended:
            await self.forbid()

    # --- what transport.watch and gateway.recheck call -------------------------------------------

    async def resync(self) -> None:
        """Events for this socket may be lost: close so that the client reconnects and gets a fresh hello."""
        await self.close(code=protocol.CLOSE_RESYNC)

    def credential(self) -> Credential:
        """What this socket rode in on, for gateway.recheck."""
        return Credential(self.user.pk, self._session_key(), self.scope.get("auth_token_id"))

    async def forbid(self) -> None:
        """The credential ended: close with 4403, so the client asks its user to log in again."""
        await self.close(code=protocol.CLOSE_FORBIDDEN)

    # --- helpers ---------------------------------------------------------------------------------

    def _background(self, work: Awaitable[Any]) -> None:
        """Run `work` beside this socket's messages; kept referenced until done (the loop holds tasks weakly)."""
        task = asyncio.ensure_future(work)
        _BACKGROUND.add(task)
        task.add_done_callback(_finished_in_background)

    async def _send_counted(self, build: Callable[..., str], *args: Any) -> None:
        """Send a notification frame with the unread count read now, after every earlier commit."""
        try:
            frame = await database_to_async(build)(*args)
        except Exception:
            # A lost count is corrected by the next event or hello; a crashed socket is not.
            logger.exception("user %s: could not count unread notifications", self.user.pk)
            return
        await self.send(text_data=frame)

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

    def _owner_in(self, scope: str) -> int | None:
        """Whose jobs a message reaches: the user's own, or everyone's (None) when staff ask for "all"."""
        if scope == "own":
            return int(self.user.pk)
        if not self.user.is_staff:
            raise BadMessage("Only staff may act on every user's jobs.", {"scope": "Only staff may use 'all'."})
        return None

    async def _unfollow(self, job_id: str) -> None:
        if self.following and job_id in self.following:
            self.following.discard(job_id)
            await self.channel_layer.group_discard(job_log_group(job_id), self.channel_name)

    def _session_key(self) -> str | None:
        session = self.scope.get("session")
        return getattr(session, "session_key", None)

    async def _error(
        self, code: str, message: str, request_id: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        await self.send(text_data=frames.error(code, message, request_id, details))


protocol.check_handlers(JobsConsumer)


def _finished_in_background(task: asyncio.Future[Any]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The batch's children stay queued in the database: the reconciler hands them out.
        logger.error("background work of a socket failed", exc_info=task.exception())


# --- database work, each one trip to Channels' database thread ------------------------------------


def _history_filter(wanted: JobFilter) -> history.Filter:
    owners = list(User.objects.filter(username__in=wanted.owner).values_list("pk", flat=True)) if wanted.owner else []
    if wanted.owner and not owners:
        owners = [0]  # usernames that name nobody: a filter that matches nothing
    return history.Filter(
        status=wanted.status or (),
        kind=wanted.kind or (),
        search=wanted.search or "",
        created_after=wanted.created_after,
        created_before=wanted.created_before,
        owner=owners,
        parent_id=_batch_id(wanted.parent_id) if wanted.parent_id is not None else None,
    )


def _batch_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise BadMessage("parent_id is not a job id.", {"filter.parent_id": "Not a job id."}) from None


def _job_list(owner_id: int | None, message: JobList) -> str:
    found = history.page(owner_id, _history_filter(message.filter), message.limit, message.cursor)
    return frames.job_list(message.request_id, found.jobs, found.next_cursor, with_owner=owner_id is None)


def _job_detail(owner_id: int | None, message: JobGet) -> str:
    job = history.find(owner_id, message.job_id)
    lines, dropped = logs.tail(job)
    return frames.job_detail(message.request_id, job, history.timeline(job), lines, dropped)


def _job_logs(job: Job, request_id: str | None) -> tuple[str, bool]:
    """The job.logs frame of the job's last lines, and whether the job had finished when they were read."""
    job.refresh_from_db(fields=["status", "log_count"])
    lines, dropped = logs.tail(job)
    return frames.job_logs(request_id, str(job.pk), lines, dropped), job.is_finished


def _job_bulk(owner_id: int | None, message: JobBulk) -> tuple[int, int]:
    return services.bulk(owner_id, message.action, _history_filter(message.filter), message.dry_run)


def _submit_batch(
    user: User, message: BatchSubmit, jobs: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any], bool]:
    batch, created = services.submit_batch(
        user, message.request_id, message.title, message.mode, jobs, start_later=True, priority=message.priority
    )
    return frames.job_payload(batch), created


def _submit(user: User, message: Submit) -> tuple[Job, dict[str, Any], bool]:
    """The job, its payload for job.accepted, and whether this message made it. A new job is answered as
    of its `job.accepted` event (seq 1); the `job.queued` event that follows carries seq 2."""
    job, created = services.submit(
        user, message.request_id, message.kind, message.params, message.priority, start_later=True
    )
    payload = frames.job_payload(job)
    if created:
        payload["seq"] = services.ACCEPTED_SEQ
    return job, payload, created


def _schedule_create(user: User, message: ScheduleCreate, origin: str) -> str:
    request = schedules.Request(
        request_id=message.request_id,
        kind=message.kind,
        params=message.params,
        name=message.name,
        cron=message.cron,
        run_at=message.run_at,
        timezone=message.timezone,
    )
    schedule, _ = schedules.create(user, request, origin)
    return frames.schedule_changed(schedule, message.request_id, created=True, deleted=False)


def _schedule_list(user: User, request_id: str | None) -> str:
    return frames.schedule_list(request_id, schedules.owned(user))


def _schedule_changed(
    change: Callable[..., Schedule], user: User, schedule_id: str, request_id: str | None, origin: str, deleted: bool
) -> str:
    schedule = change(user, schedule_id, request_id, origin)
    return frames.schedule_changed(schedule, request_id, created=False, deleted=deleted)


def _hello_data(user: User, group_ids: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The job snapshot and the notification extension of hello."""
    return _snapshot(user), _notification_hello(user, group_ids)


def _snapshot(user: User) -> list[dict[str, Any]]:
    return [frames.job_payload(job) for job in services.snapshot(user, settings.JOBS_SNAPSHOT_FINISHED)]


def _notification_hello(user: User, group_ids: Sequence[int]) -> dict[str, Any]:
    """The extension fields of hello (docs/protocol.md): unexpired notices and the unread count."""
    active = [frames.notice_payload(notice) for notice in notices.active_for(user.pk, group_ids)]
    return {"notices": active, "unread": inbox.unread_count(user.pk)}


def _notification_of_notice(user_id: int, notice_id: int) -> str | None:
    """The `notification.created` frame of the user's notification of a notice; None if it did not address them."""
    notification = inbox.of_notice(user_id, notice_id)
    if notification is None:
        return None
    return frames.notification_created(frames.notification_payload(notification), inbox.unread_count(user_id))


def _counted_created(user_id: int, notification: dict[str, Any]) -> str:
    return frames.notification_created(notification, inbox.unread_count(user_id))


def _counted_unread(user_id: int, read: list[int], read_up_to: int | None) -> str:
    return frames.notification_unread(inbox.unread_count(user_id), read, read_up_to)
