"""Re-check the credential of every open socket of this process, in one batch.

A socket stays open for hours, long after the session or token it rode in on
may have ended without a logout (expired, flushed, revoked by another process,
the user deactivated in a way that sent no event). So every
AUTH_RECHECK_SECONDS each Daphne process asks, once for all its sockets:

1. Which distinct credentials are there? A user's tabs share one session, and a
   script's sockets share one token, so there are far fewer than sockets.
2. Which of them no longer log their user in? One database call per
   CHECK_BATCH credentials (accounts.credentials.invalid_among), so that
   handshakes waiting on Channels' single database thread wait for one short
   call at a time, not for thousands queued ahead of them.
3. Close the sockets of those with 4403, and refresh the connection count
   (gateway.throttle) of all the others in one Redis round trip.

One socket asking for itself would put N / AUTH_RECHECK_SECONDS calls a second
on that one thread: with 5,500 sockets it was saturated, and new handshakes
timed out (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Protocol

from django.conf import settings

from accounts.credentials import Credential, invalid_among
from gateway import throttle
from patches.channels import database_to_async
from transport.sockets import Watched

logger = logging.getLogger(__name__)

CHECK_BATCH = 500


class Checked(Protocol):
    channel_name: str

    def credential(self) -> Credential: ...

    async def forbid(self) -> None: ...


def register(socket: Checked) -> None:
    """Have `socket`'s credential re-checked while it is open."""
    _sockets.add(socket)


def unregister(socket: Checked) -> None:
    _sockets.discard(socket)


async def _check_forever() -> None:
    while _sockets:
        await asyncio.sleep(settings.AUTH_RECHECK_SECONDS)
        await check_all()


_sockets: Watched[Checked] = Watched("credential re-check", _check_forever)


async def check_all() -> None:
    """Close every socket of this process whose credential ended; keep the others counted."""
    by_credential: defaultdict[Credential, list[Checked]] = defaultdict(list)
    for socket in _sockets:
        by_credential[socket.credential()].append(socket)
    pending = list(by_credential)
    for start in range(0, len(pending), CHECK_BATCH):
        try:
            invalid = await database_to_async(invalid_among)(pending[start : start + CHECK_BATCH])
        except Exception:
            # The database is unreachable: keep these sockets, and ask again next time.
            logger.exception("credential re-check failed; will try again")
            continue
        for credential in invalid:
            for socket in by_credential.pop(credential):
                unregister(socket)
                with contextlib.suppress(Exception):
                    await socket.forbid()
    still_open: defaultdict[int, list[str]] = defaultdict(list)
    for credential, sockets in by_credential.items():
        still_open[credential.user_id].extend(socket.channel_name for socket in sockets if socket in _sockets)
    await throttle.refresh_connections(still_open)
