"""Daphne, with one shutdown bug fixed: `python -m core.daphne` takes Daphne's own arguments.

On SIGTERM, Daphne 4.2.3 cancels every application instance from a "before
shutdown" trigger, `Server.kill_all_applications`, and waits for them. That
method reads `details["application_instance"]` for every connection it
tracks, but a connection has no such key until its request starts, and keeps
none for up to a second after its application finished (the HTTP side of an
upgraded WebSocket, a health probe that connected and left). Any SIGTERM
within a second of such a connection raises KeyError there: no consumer is
cancelled, none runs its cleanup, and the process exits with open sockets
still counted against their users. This version skips those connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from twisted.internet import defer

logger = logging.getLogger("daphne.server")


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


def main() -> None:
    Server.kill_all_applications = kill_all_applications
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
