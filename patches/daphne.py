"""Daphne 4.2.3, fixed four times and given a hook; `apply()` installs them (core.daphne calls it).

1. Shutdown. On SIGTERM, Daphne cancels every application instance from a
   "before shutdown" trigger, `Server.kill_all_applications`, and waits for
   them. That method reads `details["application_instance"]` for every
   connection it tracks, but a connection has no such key until its request
   starts, and keeps none for up to a second after its application finished
   (the HTTP side of an upgraded WebSocket, a health probe that connected and
   left). Any SIGTERM within a second of such a connection raises KeyError
   there: no consumer is cancelled, none runs its cleanup, and the process
   exits with open sockets still counted against their users. This version
   skips those connections.

2. Request bodies. Twisted receives a body into a temporary file (on disk
   past 100 KB), then two copies of it were made in memory before Django
   read a byte:
   a. Twisted's `Request.requestReceived` parses a multipart/form-data or
      urlencoded POST body into `request.args`, which Daphne never reads,
      with the email package: some 12 times the body's size (a 150 MB
      upload took Daphne's peak RSS up by 1.9 GB). Requests here are made
      with `parsePOSTFormSubmission=False`, Twisted's switch for that.
   b. `WebRequest.process` reads the whole file, in 8 KiB chunks and without
      yielding, into the application's unbounded asyncio queue (a 150 MB
      body: 150 MB more). Here `Server.create_application` gives an HTTP
      application a receive() that reads the next chunk from the file only
      when called, so Daphne holds one chunk per request. The file position
      is left at the end, so the loop in `process`, which runs right after
      create_application returns, reads nothing and queues only an empty
      final message, which is dropped.

3. Sockets that do not read. What the application sends, Daphne writes to
   Twisted's transport, which buffers in memory whatever the peer has not
   taken yet, without limit: a client that stopped reading (a frozen tab, a
   stalled network) under a stream of events grew Daphne by every byte sent
   until the ping timeout dropped it. Here each socket's transport has a
   streaming producer registered and its `bufferSize` set to
   WEBSOCKET_SEND_BUFFER_BYTES, so Twisted itself says (by pausing the
   producer) when a write leaves more than that buffered. The socket is then
   closed with 4012 (the protocol's "events may have been lost: reconnect and
   resync from hello"), and the frames the application sends afterwards are
   dropped. The close frame queues behind the unread bytes, so the peer is
   given Daphne's ping timeout to read up to it before the connection is
   aborted and the buffer freed. Twisted counts its whole write buffer, part
   of which may already be sent, so the close can come somewhat before the
   limit, never after it by more than one frame.

4. Sends on a closing socket. Once a close frame has gone either way (the
   client's, or the application's own close) and until Twisted reports the
   connection lost, autobahn raises `Disconnected` on every send, and Daphne
   lets it reach the application: the consumer died on it without running
   its disconnect, so the socket's connection slot stayed counted against its
   user and its groups were never left. An event published just as a client
   closed was enough. Such sends are dropped here (their socket is going; its
   websocket.disconnect follows), as are those to a socket closed by fix 3.

5. A switch to stop accepting connections: each port Daphne listens on is
   registered with patches.listening, whose `pause_accepting()` takes them
   out of the reactor and `resume_accepting()` puts them back.
   gateway.admission pauses while as many handshakes wait for their turn as
   it works on at once, so that a reconnect storm's refusals do not take the
   CPU the admitted handshakes need.
"""

from __future__ import annotations

import asyncio
import io
import logging
from functools import partial
from typing import IO, Any

from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import defer

from patches import listening

logger = logging.getLogger("daphne.server")

Message = dict[str, Any]


def kill_all_applications(self: Server) -> Any:
    """Cancel every running application instance, then make Twisted wait until they are all done."""
    instances = [details.get("application_instance") for details in self.connections.values()]
    running = [instance for instance in instances if instance is not None and not instance.done()]
    for instance in running:
        instance.cancel()
    logger.info("Killed %i pending application instances", len(running))
    # return_exceptions: wait for every one, not only until the first ends cancelled.
    waiting = defer.Deferred.fromFuture(asyncio.gather(*running, return_exceptions=True))
    waiting.addErrback(lambda _: None)
    return waiting


class RequestBody:
    """An HTTP request's side of the application: its receive(), and the queue Daphne puts messages in.

    receive() reads the body from Twisted's file one chunk per call, after any
    message Daphne queued (http.disconnect), so a client that left stops the
    reading. Twisted closes the file when the request ends.
    """

    def __init__(self, content: IO[bytes], chunk_size: int) -> None:
        self.content = content
        self.chunk_size = chunk_size
        self.offset = content.tell()
        self.more_body = True
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        content.seek(0, io.SEEK_END)  # leaves process() nothing to read (see the module's docstring)

    def put_nowait(self, message: Message) -> None:
        """Daphne's side. Its http.request is the empty one of an emptied file: receive() sends the body."""
        if message["type"] != "http.request":
            self.messages.put_nowait(message)

    async def receive(self) -> Message:
        if self.more_body:
            await asyncio.sleep(0)  # other connections run between the chunks of a long body
        if self.more_body and self.messages.empty() and not self.content.closed:
            return self._next_chunk()
        return await self.messages.get()

    def _next_chunk(self) -> Message:
        self.content.seek(self.offset)
        chunk = self.content.read(self.chunk_size)
        self.offset += len(chunk)
        self.more_body = len(chunk) == self.chunk_size  # as Daphne says it: an exact fit ends with b""
        return {"type": "http.request", "body": chunk, "more_body": self.more_body}


_web_request_init = WebRequest.__init__


def web_request_init(self: WebRequest, *args: Any, **kwargs: Any) -> None:
    """Daphne's, with Twisted told to leave POST bodies unparsed (fix 2a)."""
    _web_request_init(self, *args, parsePOSTFormSubmission=False, **kwargs)


_create_application = Server.create_application


def create_application(self: Server, protocol: Any, scope: Message) -> Any:
    """Daphne's own for WebSockets; for HTTP the same, with a RequestBody in place of the queue."""
    if scope["type"] != "http":
        return _create_application(self, protocol, scope)
    assert "application_instance" not in self.connections[protocol]
    body = RequestBody(protocol.content, self.request_buffer_size)
    scope.setdefault("asgi", {"version": "3.0"})
    instance = self.application(scope=scope, receive=body.receive, send=partial(self.handle_reply, protocol))
    if protocol not in self.connections:
        return None
    self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance, loop=asyncio.get_event_loop())
    return body


# gateway.protocol.CLOSE_RESYNC, which this bottom layer cannot import (tests/unit/test_send_buffer_limit.py
# checks that the two agree).
CLOSE_RESYNC = 4012


class SendBufferLimit:
    """A streaming (push) producer registered on a socket's transport, only to hear when its write buffer
    passes the limit (fix 3). Twisted calls these three methods and checks nothing else."""

    def __init__(self) -> None:
        self.passed = False  # Twisted paused us: more than the limit is buffered
        self.closed = False  # and the socket was closed for it

    def pauseProducing(self) -> None:
        self.passed = True

    def resumeProducing(self) -> None:
        """Nothing to resume: the limit closes the socket rather than pausing anything."""

    def stopProducing(self) -> None:
        """The connection is gone; nothing to stop."""


_on_open = WebSocketProtocol.onOpen


def on_open(self: WebSocketProtocol) -> None:
    """Daphne's, then the send buffer's limit on the socket's transport."""
    _on_open(self)
    self.send_buffer = SendBufferLimit()
    self.transport.bufferSize = settings.WEBSOCKET_SEND_BUFFER_BYTES
    # Twisted's HTTPChannel, which read the upgrade request and handed the connection over, is still
    # registered as the transport's producer; a transport takes one, and the channel is done with it.
    self.transport.unregisterProducer()
    self.transport.registerProducer(self.send_buffer, True)


_handle_reply = WebSocketProtocol.handle_reply


def handle_reply(self: WebSocketProtocol, message: Message) -> None:
    """Daphne's, except that a socket past its send buffer's limit is closed with 4012 (fix 3), and that
    nothing is sent on a socket that is closing (fix 4)."""
    limit: SendBufferLimit | None = getattr(self, "send_buffer", None)  # None until the socket opens
    if message["type"] != "websocket.send" or not closing(self, limit):
        _handle_reply(self, message)
    if limit is not None and limit.passed and not limit.closed:
        limit.closed = True
        close_unread(self)


def closing(protocol: WebSocketProtocol, limit: SendBufferLimit | None) -> bool:
    going = protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED)
    return bool(going or (limit is not None and limit.passed))


def close_unread(protocol: WebSocketProtocol) -> None:
    """Close with 4012 a socket whose peer left more than the limit unread (fix 3)."""
    logger.warning(
        "Closing WebSocket %s with %i: more than WEBSOCKET_SEND_BUFFER_BYTES (%i) unread",
        protocol.client_addr,
        CLOSE_RESYNC,
        settings.WEBSOCKET_SEND_BUFFER_BYTES,
    )
    # Once told is enough; and Twisted would not finish a loseConnection while a producer is registered.
    protocol.transport.unregisterProducer()
    # The close frame waits behind the unread bytes: a live peer gets as long to read up to it as it
    # gets to answer a ping; then autobahn aborts the connection, which frees the buffer.
    protocol.closeHandshakeTimeout = protocol.server.ping_timeout
    protocol.serverClose(code=CLOSE_RESYNC)


_original_listen_success = Server.listen_success


def listen_success(self: Server, port: Any) -> None:
    listening.listening_on(port)
    _original_listen_success(self, port)


def apply() -> None:
    """Install the fixes (patches.WRITTEN_FOR names the Daphne version they replace code of)."""
    Server.kill_all_applications = kill_all_applications
    WebRequest.__init__ = web_request_init
    Server.create_application = create_application
    WebSocketProtocol.onOpen = on_open
    WebSocketProtocol.handle_reply = handle_reply
    Server.listen_success = listen_success
