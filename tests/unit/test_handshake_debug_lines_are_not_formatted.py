"""patches.autobahn: a handshake formats autobahn's debug lines only if they are written."""

from __future__ import annotations

import pprint
from typing import Any

import pytest
from autobahn.websocket import protocol
from twisted.logger import formatEvent

import patches.autobahn

PFORMAT = pprint.pformat


@pytest.fixture
def formatted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What pprint.pformat was asked to format, with the patch applied (and undone after the test)."""
    seen: list[Any] = []

    def counting(value: Any, *args: Any, **kwargs: Any) -> str:
        seen.append(value)
        return PFORMAT(value, *args, **kwargs)

    monkeypatch.setattr(protocol, "pformat", protocol.pformat)  # type: ignore[attr-defined]
    monkeypatch.setattr(protocol.Timings, "__str__", protocol.Timings.__str__)
    monkeypatch.setattr(pprint, "pformat", counting)
    patches.autobahn.apply()
    return seen


def test_options_passed_to_a_debug_line_are_formatted_only_when_it_is_written(formatted: list[Any]) -> None:
    options = [("autoPingInterval", 20, "WebSocketServerFactory")]
    argument = protocol.pformat(options)  # type: ignore[attr-defined]
    assert formatted == []
    # As Twisted's logger (Daphne's, under autobahn's txaio) writes the line, when its level is on.
    line = formatEvent({"log_format": "\n{attrs}", "attrs": argument})
    assert formatted == [options]
    assert line == "\n" + PFORMAT(options)


def test_timings_still_print_as_text(formatted: list[Any]) -> None:
    timings = protocol.Timings()
    timings.track("onOpen")
    assert "onOpen" in str(timings)
