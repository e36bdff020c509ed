"""jobsctl on a terminal: a tqdm bar with the percent and the step; plain lines when there is no width."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import termios
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import pytest

from jobsctl.display import Display


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def running(current: int, total: int | None, message: str = "counting") -> dict[str, Any]:
    return {"id": "j1", "status": "running", "progress": {"current": current, "total": total, "message": message}}


def test_on_a_terminal_the_bar_shows_the_percent_and_the_step() -> None:
    terminal = FakeTerminal()
    display = Display(terminal)
    assert display.tty
    display.update(running(3, 10))
    drawn = terminal.getvalue()
    assert drawn.startswith("job j1 running\n")  # the status line comes first, above the bar
    assert "counting:  30%|###" in drawn and "| 3/10 [" in drawn
    display.update(running(10, 10))
    assert terminal.getvalue().rsplit("\r", 1)[-1].startswith("counting: 100%|##########| 10/10 [")
    display.close()
    assert terminal.getvalue().endswith("\r")  # cleared (leave=False): the outcome is printed in its place


def test_without_a_total_the_bar_counts_steps() -> None:
    terminal = FakeTerminal()
    display = Display(terminal)
    display.update(running(42, None, "reading"))
    last = terminal.getvalue().rsplit("\r", 1)[-1]
    assert last.startswith("reading: 42 [") and "%" not in last
    display.close()


class Pty:
    """A pseudo-terminal `columns` wide: Display writes to `stream`, the test reads what it drew."""

    def __init__(self, columns: int) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.stream: TextIO = os.fdopen(slave, "w")

    def read(self) -> str:
        drawn = b""
        while select.select([self.master], [], [], 0.5)[0]:
            drawn += os.read(self.master, 65536)
        return drawn.decode()

    def close(self) -> None:
        self.stream.close()
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Callable[[int], Pty]]:
    opened: list[Pty] = []

    def of_width(columns: int) -> Pty:
        opened.append(Pty(columns))
        return opened[-1]

    yield of_width
    for each in opened:
        each.close()


def test_a_real_terminal_gets_the_bar(terminal: Callable[[int], Pty]) -> None:
    screen = terminal(80)
    display = Display(screen.stream)
    assert display.tty
    display.update(running(1, 4))
    shown = screen.read()
    assert "counting:  25%|" in shown and "| 1/4 [" in shown
    display.close()


def test_a_terminal_nobody_sized_gets_plain_lines(terminal: Callable[[int], Pty]) -> None:
    screen = terminal(0)
    display = Display(screen.stream)
    assert not display.tty
    display.update(running(1, 4))
    shown = screen.read()
    assert "job j1 running" in shown and "  1/4 counting" in shown
    assert "%|" not in shown
