"""Admission of WebSocket handshakes: at most WEBSOCKET_HANDSHAKES_IN_FLIGHT at a time per process.

A handshake costs the process its credential check, its connection slot, its group joins and the hello's
snapshot. When a Daphne restarts under thousands of sockets, they all come back at once: unbounded, every
handshake waits behind all the others, passes Daphne's connect timeout (5 s) and is dropped, and the work
done for it is wasted, so none completes and the clients keep coming (bench.reconnect_storm measured
0 of 2,000 back after 180 s).

So a handshake past the bound waits its turn, first come first served, for at most
WEBSOCKET_HANDSHAKE_WAIT_SECONDS (2 s, well inside Daphne's 5 s), costing nothing while it waits. One that
does not get a turn is accepted and closed with 4013, "try again later" (RFC 6455's 1013, which autobahn
does not let an application send): its client backs off and retries (docs/protocol.md). Refusing at once
instead made the clients retry so fast that the refusals alone took the CPU the admitted ones needed.

Refusals still cost a connection's parsing, its WebSocket handshake and its close: 5,000 clients that
retry every 2 s offered more of them than a process could even parse, and none got back
(bench.reconnect_storm). So while as many handshakes wait as are in flight, the process stops accepting
connections at all (patches.listening), and starts again once half of them are through: the rest
wait in the kernel's accept queue, for free, and every handshake the process takes on is one it can finish.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from django.conf import settings

from patches import listening
from telemetry import metrics

CLOSE_TRY_AGAIN_LATER = 4013  # 1013 of RFC 6455, in the range Daphne (autobahn) lets an application send
_DONE = frozenset({"websocket.send", "websocket.close"})  # the hello, or a refusal: the handshake is over

ASGIApp = Any  # Channels' ASGI applications are untyped


class HandshakeAdmission:
    """Outermost on the WebSocket route: counts handshakes from the upgrade to the first frame sent."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.in_flight = 0
        self._turns: deque[asyncio.Future[None]] = deque()  # handshakes waiting, oldest first
        self.accepting = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not await self._turn():
            metrics.handshake_deferred()
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
            return None
        admitted = True

        def over() -> None:
            nonlocal admitted
            if admitted:
                admitted = False
                self._next()

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] in _DONE:
                over()
            await send(message)

        try:
            return await self.inner(scope, receive, counting_send)
        finally:
            over()

    async def _turn(self) -> bool:
        """Wait for a place among the handshakes in flight; False if none came within the wait."""
        if self.in_flight < settings.WEBSOCKET_HANDSHAKES_IN_FLIGHT and not self._turns:
            self.in_flight += 1
            return True
        turn = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        self._pace()
        try:
            async with asyncio.timeout(settings.WEBSOCKET_HANDSHAKE_WAIT_SECONDS):
                await turn  # _next hands over its place: in_flight is already counted for this one
        except TimeoutError:
            # The place may have been handed over just as the wait ran out: then it is this one's.
            return turn.done() and not turn.cancelled()
        finally:
            if turn in self._turns:
                self._turns.remove(turn)  # O(n), only for one that gave up (n at most the clients waiting)
                self._pace()
        return True

    def _next(self) -> None:
        """A handshake is over: hand its place to the oldest one waiting, or free it."""
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)
                break
        else:
            self.in_flight -= 1
        self._pace()

    def _pace(self) -> None:
        """Stop accepting connections while as many handshakes wait as are in flight; start at half."""
        limit = settings.WEBSOCKET_HANDSHAKES_IN_FLIGHT
        if self.accepting and len(self._turns) >= limit:
            self.accepting = False
            metrics.accepting_paused()
            listening.pause_accepting()
        elif not self.accepting and len(self._turns) <= limit // 2:
            self.accepting = True
            listening.resume_accepting()
