"""patches.daphne, fix 3: a socket whose transport buffers more than WEBSOCKET_SEND_BUFFER_BYTES is
closed once with 4012 (the protocol's resync) and sent nothing more; one under the limit is left alone.
(tests/integration/faults/test_slow_reader_memory.py runs it in Daphne against a client that stops reading.)
Fix 4: a send on a socket that is closing is dropped, not raised into the application."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from autobahn.exception import Disconnected
from autobahn.websocket.protocol import WebSocketProtocol
from pytest_django.fixtures import Settings

import patches.daphne
from gateway import protocol


class Transport:
    """As Twisted's TCP transport: one producer at a time, paused once a write leaves more than bufferSize buffered."""

    def __init__(self) -> None:
        self.bufferSize = 65536
        self.buffered = 0
        self.producer: Any = SimpleNamespace()  # Twisted's HTTPChannel, registered when it read the upgrade

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert self.producer is None and streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.buffered += len(data)
        if self.producer is not None and self.buffered > self.bufferSize:
            self.producer.pauseProducing()


@pytest.fixture
def socket(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A Daphne WebSocketProtocol, opened, whose sends write their text to its transport."""
    settings.WEBSOCKET_SEND_BUFFER_BYTES = 10
    closes: list[int] = []
    sock = SimpleNamespace(
        transport=Transport(),
        server=SimpleNamespace(ping_timeout=30),
        client_addr=None,
        closeHandshakeTimeout=1,
        state=WebSocketProtocol.STATE_OPEN,
        STATE_CLOSING=WebSocketProtocol.STATE_CLOSING,
        STATE_CLOSED=WebSocketProtocol.STATE_CLOSED,
    )

    def server_close(code: int) -> None:
        closes.append(code)
        sock.state = WebSocketProtocol.STATE_CLOSING

    sock.serverClose = server_close
    sock.closes = closes

    def daphnes_handle_reply(self: Any, message: dict[str, Any]) -> None:
        """As Daphne's: autobahn raises Disconnected on a send once the socket is no longer open."""
        if message["type"] != "websocket.send":
            self.serverClose(code=message.get("code"))
        elif self.state != WebSocketProtocol.STATE_OPEN:
            raise Disconnected("Attempt to send on a closed protocol")
        else:
            self.transport.write(message["text"].encode())

    monkeypatch.setattr(patches.daphne, "_on_open", lambda self: None)
    monkeypatch.setattr(patches.daphne, "_handle_reply", daphnes_handle_reply)
    patches.daphne.on_open(sock)
    return sock


def send(sock: SimpleNamespace, text: str) -> None:
    patches.daphne.handle_reply(sock, {"type": "websocket.send", "text": text})


def test_a_socket_past_its_limit_is_closed_with_4012_once_and_sent_nothing_more(socket: SimpleNamespace) -> None:
    assert socket.transport.bufferSize == 10
    send(socket, "12345")
    send(socket, "12345")
    assert socket.closes == []  # at the limit, not past it
    send(socket, "1")
    assert socket.closes == [patches.daphne.CLOSE_RESYNC]
    assert socket.closeHandshakeTimeout == 30  # the peer gets Daphne's ping timeout to read up to the close
    send(socket, "dropped")
    assert socket.transport.buffered == 11
    patches.daphne.handle_reply(socket, {"type": "websocket.close", "code": 1000})
    assert socket.closes == [patches.daphne.CLOSE_RESYNC, 1000]  # the application's close still goes through


def test_a_send_on_a_socket_whose_client_is_closing_it_is_dropped(socket: SimpleNamespace) -> None:
    socket.state = WebSocketProtocol.STATE_CLOSING  # the client's close frame came; the connection is not lost yet
    send(socket, "an event published just then")
    assert socket.transport.buffered == 0
    assert socket.closes == []


def test_the_close_code_is_the_protocols_resync() -> None:
    assert patches.daphne.CLOSE_RESYNC == protocol.CLOSE_RESYNC
