"""gateway.admission: past WEBSOCKET_HANDSHAKES_IN_FLIGHT handshakes at once, a new one is closed with 4013
at once; one admitted stops counting when it sends its first frame."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from gateway.admission import CLOSE_TRY_AGAIN_LATER, HandshakeAdmission
from tests.unit.slow_hello import SlowHello


async def open_one(application: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/jobs/")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_past_the_bound_a_handshake_is_closed_with_try_again_later(settings: Any) -> None:
    settings.WEBSOCKET_HANDSHAKES_IN_FLIGHT = 2
    settings.WEBSOCKET_HANDSHAKE_WAIT_SECONDS = 0
    SlowHello.release = asyncio.Event()
    application = HandshakeAdmission(SlowHello.as_asgi())
    first, second = await open_one(application), await open_one(application)
    assert application.in_flight == 2

    third = await open_one(application)
    assert await third.receive_output(2) == {"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER}

    SlowHello.release.set()  # the two at work send their hellos: their handshakes are over
    for communicator in (first, second):
        assert await communicator.receive_from(2) == '{"type":"hello"}'
    assert application.in_flight == 0
    fourth = await open_one(application)
    assert await fourth.receive_from(2) == '{"type":"hello"}'
    for communicator in (first, second, fourth):
        await communicator.disconnect()


async def test_past_the_bound_a_handshake_waits_for_the_next_place(settings: Any) -> None:
    settings.WEBSOCKET_HANDSHAKES_IN_FLIGHT = 1
    settings.WEBSOCKET_HANDSHAKE_WAIT_SECONDS = 4
    SlowHello.release = asyncio.Event()
    application = HandshakeAdmission(SlowHello.as_asgi())
    first = await open_one(application)
    second = WebsocketCommunicator(application, "/ws/jobs/")
    waiting = asyncio.ensure_future(second.connect(timeout=5))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # not accepted, not refused: waiting for the first handshake's place
    SlowHello.release.set()
    assert await first.receive_from(2) == '{"type":"hello"}'
    assert (await waiting)[0]
    assert await second.receive_from(2) == '{"type":"hello"}'
    assert application.in_flight == 0
    for communicator in (first, second):
        await communicator.disconnect()


async def test_a_handshake_that_fails_stops_counting(settings: Any) -> None:
    settings.WEBSOCKET_HANDSHAKES_IN_FLIGHT = 1

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("the database is down")

    application = HandshakeAdmission(broken)
    with pytest.raises(RuntimeError):
        await application({"type": "websocket"}, None, None)
    assert application.in_flight == 0
