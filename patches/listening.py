"""The web server's listening sockets, and a switch to stop and start accepting on them.

patches.daphne (fix 5) registers each port Daphne listens on; gateway.admission flips the switch. Kept
apart from patches.daphne because importing Daphne's server module installs Twisted's reactor: the
gateway is imported by processes that never serve (tests in process, the management commands).
While paused, new connections wait in the kernel's accept queue (past its backlog, the clients' TCP
resends their SYN), costing this process nothing.
"""

from __future__ import annotations

from typing import Any

_ports: list[Any] = []  # Twisted's tcp.Port objects (they have no stubs)


def listening_on(port: Any) -> None:
    _ports.append(port)


def pause_accepting() -> None:
    """Stop taking new connections (a no-op in a process that listens on nothing)."""
    for port in _ports:
        port.stopReading()


def resume_accepting() -> None:
    for port in _ports:
        if port.connected:  # not once the server has stopped listening (shutdown)
            port.startReading()
