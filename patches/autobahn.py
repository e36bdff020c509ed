"""Autobahn 26.10, which Daphne speaks WebSocket with: no pretty-printing for debug lines nobody logs.

`WebSocketProtocol._connectionMade` and `startHandshake` pass `pformat(...)` of the
connection's 40-odd options and of its transport details to `log.debug`, so both
are formatted for every handshake whatever the log level: about 4 % of a Daphne
process's main thread while sockets connect (a py-spy profile of the idle
connections benchmark, docs/benchmarks.md). `apply()` gives that module a
`pformat` that formats only when the line is written; `Timings.__str__`, its
only other use, keeps the eager one.
"""

from __future__ import annotations

import pprint
from typing import Any

from autobahn.websocket import protocol


class _Formatted:
    """pprint.pformat(value), computed when the log line is formatted, if ever."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _timings(timings: protocol.Timings) -> str:
    return pprint.pformat(timings._timings)


def apply() -> None:
    protocol.pformat = _Formatted  # type: ignore[attr-defined,assignment]
    protocol.Timings.__str__ = _timings  # type: ignore[method-assign]
