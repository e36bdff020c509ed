"""gateway.admission stops the process accepting connections while as many handshakes wait for their turn as
are in flight, and starts again once half of them are through (patches.listening switches the ports)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from gateway.admission import HandshakeAdmission
from patches import listening
from tests.unit.slow_hello import SlowHello


class Port:
    """What patches.listening uses of Twisted's tcp.Port."""

    def __init__(self) -> None:
        self.connected = True
        self.reading = True
        self.switches: list[bool] = []

    def stopReading(self) -> None:
        self.reading = False
        self.switches.append(False)

    def startReading(self) -> None:
        self.reading = True
        self.switches.append(True)


@pytest.fixture
def port() -> Iterator[Port]:
    port = Port()
    listening.listening_on(port)
    try:
        yield port
    finally:
        listening._ports.remove(port)


async def test_accepting_stops_while_handshakes_queue_and_starts_again_at_half(settings: Any, port: Port) -> None:
    settings.WEBSOCKET_HANDSHAKES_IN_FLIGHT = 2
    settings.WEBSOCKET_HANDSHAKE_WAIT_SECONDS = 4
    SlowHello.release = asyncio.Event()
    application = HandshakeAdmission(SlowHello.as_asgi())
    communicators = [WebsocketCommunicator(application, "/ws/jobs/") for _ in range(4)]
    connecting = [asyncio.ensure_future(communicator.connect(timeout=5)) for communicator in communicators[:3]]
    await asyncio.sleep(0.2)
    assert application.in_flight == 2 and port.switches == []  # one waits: fewer than in flight

    connecting.append(asyncio.ensure_future(communicators[3].connect(timeout=5)))
    await asyncio.sleep(0.2)
    assert port.switches == [False]  # two wait, as many as in flight

    SlowHello.release.set()  # the first two send their hellos and hand their places to the two waiting
    assert all(connected for connected, _ in await asyncio.gather(*connecting))
    for communicator in communicators:
        assert await communicator.receive_from(2) == '{"type":"hello"}'
    assert port.switches == [False, True]
    assert application.in_flight == 0
    for communicator in communicators:
        await communicator.disconnect()


async def test_a_stopped_server_is_not_made_to_accept_again(settings: Any, port: Port) -> None:
    port.connected = False  # Daphne stopped listening (shutdown)
    listening.pause_accepting()
    listening.resume_accepting()
    assert port.switches == [False]
