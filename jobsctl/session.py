"""A connection to /ws/jobs/ that outlives drops: it reconnects and says so.

Every message the server sends is put in one queue, in order. When the
socket drops (a server restart, a network fault), the session reconnects with
exponential backoff and jitter, as the protocol asks of clients, and puts a
RESYNC message carrying the new `hello` in the queue: whoever reads the queue
merges that snapshot by `seq` and resends what may have been lost. Close codes
4401 and 4403 (credentials refused or revoked) and 4009 (a frame too large,
which a resend would repeat) end the session instead; a message too large for a
frame is refused before it is sent.
Ctrl-C arrives in the same queue as INTERRUPT, so a command handles it
between two messages, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from jobsctl.errors import AuthError, CliError

Message = dict[str, Any]

RESYNC = "jobsctl.resync"  # {"type": RESYNC, "hello": {...}}: reconnected
INTERRUPT = "jobsctl.interrupt"  # Ctrl-C
FATAL = "jobsctl.fatal"  # {"type": FATAL, "error": CliError}: the session is over

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_POLICY = 4008
CLOSE_TOO_LARGE = 4009
# The protocol's limit on a client frame, in UTF-8 bytes: past it the server closes with 4009,
# and further past it (its WebSocket layer's limit) it drops the connection (1006).
MAX_FRAME_BYTES = 64 * 1024
# A hello carries up to a few hundred jobs with their params and results.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
OPEN_TIMEOUT = 10.0
FIRST_DELAY, MAX_DELAY, POLICY_DELAY = 0.5, 10.0, 30.0
GIVE_UP_AFTER = 300.0


@dataclass(frozen=True)
class Config:
    url: str  # the service's base URL, http(s)://host:port
    token: str

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/jobs/", "", ""))


def encode(message: Any) -> str:
    """A message as the text of its frame (what the server measures against its 64 KiB)."""
    return json.dumps(message)


def auth_error(code: int) -> AuthError:
    what = "revoked, or its user deactivated" if code == CLOSE_FORBIDDEN else "wrong, revoked or expired"
    return AuthError(
        f"The server refused the API token (close code {code}): it is {what}. Create one with "
        "`manage.py tokens create <user>` and pass it with --token or JOBS_TOKEN.",
        "not_authenticated",
    )


def too_large_error(why: str) -> CliError:
    return CliError(f"{why}a message may be at most {MAX_FRAME_BYTES:,} bytes as JSON.", "frame_too_large")


def close_code(exc: ConnectionClosed) -> int:
    return int(exc.rcvd.code) if exc.rcvd is not None else 1006


class Session:
    def __init__(
        self, config: Config, notify: Callable[[str], None] | None = None, give_up_after: float = GIVE_UP_AFTER
    ) -> None:
        self.config = config
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.hello: Message = {}
        self._notify = notify or (lambda text: None)
        self._give_up_after = give_up_after
        self._socket: ClientConnection | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> Message:
        """Connect and read `hello`; errors here are final (no retry on the first connection)."""
        self._socket, self.hello = await self._open()
        self._pump = asyncio.create_task(self._run())
        return self.hello

    async def send(self, message: Message) -> None:
        """Send, or drop silently if the socket just died: a RESYNC follows, and readers resend then.

        A message larger than a frame may be is refused (CliError): the server would drop the
        connection, and the resend after the reconnect would be dropped again, for ever.
        """
        text = encode(message)
        size = len(text.encode())
        if size > MAX_FRAME_BYTES:
            raise too_large_error(f"The {message.get('type')} message is {size:,} bytes as JSON; ")
        try:
            assert self._socket is not None, "start() first"
            await self._socket.send(text)
        except ConnectionClosed:
            pass

    async def next(self) -> Message:
        message = await self.queue.get()
        if message["type"] == FATAL:
            error: CliError = message["error"]
            raise error
        return message

    def interrupt(self) -> None:
        self.queue.put_nowait({"type": INTERRUPT})

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._socket is not None:
            await self._socket.close()

    async def _open(self) -> tuple[ClientConnection, Message]:
        headers = {"Authorization": f"Bearer {self.config.token}"}
        try:
            socket = await connect(
                self.config.ws_url, additional_headers=headers, open_timeout=OPEN_TIMEOUT, max_size=MAX_MESSAGE_BYTES
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthError(f"The server refused the handshake (HTTP {status}).", "not_authenticated") from None
            raise CliError(f"The WebSocket handshake at {self.config.ws_url} failed: HTTP {status}.") from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise CliError(f"Cannot connect to {self.config.ws_url}: {exc or type(exc).__name__}") from None
        return socket, await self._hello(socket)

    async def _hello(self, socket: ClientConnection) -> Message:
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                hello = json.loads(await socket.recv())
        except ConnectionClosed as exc:
            code = close_code(exc)
            if code in (CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN):
                raise auth_error(code) from None
            raise CliError(f"The server closed the connection (code {code}) before its hello.") from None
        except (TimeoutError, ValueError):
            await socket.close()
            raise CliError("The server sent no hello: is JOBS_URL the job service?") from None
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise CliError("The server's first message was not a hello: is JOBS_URL the job service?")
        return hello

    async def _run(self) -> None:
        """Read frames into the queue; on a drop, reconnect and announce the new hello."""
        while True:
            assert self._socket is not None
            code = await self._read_all(self._socket)
            if code in (CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN):
                await self.queue.put({"type": FATAL, "error": auth_error(code)})
                return
            if code == CLOSE_TOO_LARGE:  # the same message again would be refused again
                await self.queue.put({"type": FATAL, "error": too_large_error(f"The server closed with {code}: ")})
                return
            try:
                self._socket, self.hello = await self._reconnect(code)
            except CliError as exc:
                await self.queue.put({"type": FATAL, "error": exc})
                return
            await self.queue.put({"type": RESYNC, "hello": self.hello})

    async def _read_all(self, socket: ClientConnection) -> int:
        try:
            async for frame in socket:
                message = _decode(frame)
                if message is not None:
                    await self.queue.put(message)
        except ConnectionClosed as exc:
            return close_code(exc)
        return int(socket.close_code or 1006)

    async def _reconnect(self, code: int) -> tuple[ClientConnection, Message]:
        self._notify(f"connection lost (code {code}); reconnecting")
        deadline = time.monotonic() + self._give_up_after
        delay = FIRST_DELAY
        while True:
            # Jitter: many clients cut off by one restart must not come back in step.
            wait = max(delay, POLICY_DELAY) if code == CLOSE_POLICY else delay
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))  # noqa: S311  (not security)
            try:
                opened = await self._open()
            except AuthError:
                raise
            except CliError as exc:
                if time.monotonic() > deadline:
                    raise CliError(f"Gave up reconnecting after {self._give_up_after:.0f} s: {exc.message}") from None
                delay, code = min(delay * 2, MAX_DELAY), 0
                continue
            self._notify("reconnected")
            return opened


def _decode(frame: str | bytes) -> Message | None:
    if isinstance(frame, bytes):
        return None
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("type"), str) else None
