"""Django's SQLite backend, with write transactions that take turns on a file lock, not on SQLite's busy handler.

Every transaction here is IMMEDIATE (core.settings): it takes SQLite's write lock at BEGIN. When
another connection (Daphne's threads, each worker process) holds it, SQLite's busy handler sleeps
and tries again, sleeping 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms at a time: under a
steady stream of short transactions a waiter keeps waking to find the lock taken again, and the
worker's claims waited most of their time there (docs/benchmarks.md, "where the time goes").

So a transaction first takes an exclusive `flock` on `<database>.writers`, held until it commits or
rolls back, so that it never waits in SQLite's handler. Threads of one process (Daphne's database
threads) first queue on a lock of the process; the one at its head waits for the file lock in a
blocking `flock`, which the kernel ends the moment the lock comes free. Waiting by polling cost either
CPU (every 0.1 ms) or idle gaps in the one writer's turn (every 1 ms: about a third of a millisecond
per hand-over, three hand-overs per job), and every poll took the GIL from the thread holding the turn
(docs/benchmarks.md, "Throughput").

A blocking `flock` has no timeout, so a thread of its own does that wait (`_Waiter`), and the writer
waits for it no longer than the database's `timeout` option, as SQLite's own wait is bounded (then
"database is locked"). Writes outside a transaction (autocommit) still meet SQLite's lock alone; the
service writes in transactions.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

logger = logging.getLogger(__name__)

# One per database file: this process's threads take turns on it before the file lock.
_in_process: dict[str, threading.Lock] = {}
_in_process_guard = threading.Lock()


def _process_lock(name: str) -> threading.Lock:
    with _in_process_guard:
        return _in_process.setdefault(name, threading.Lock())


@dataclass(eq=False)
class _Request:
    fd: int  # a duplicate of the connection's: the same lock, and still open if the connection closes
    guard: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    taken: bool = False
    abandoned: bool = False
    failed: bool = False


class _Waiter:
    """The thread of this process that waits in a blocking `flock` for the writer at the head of its queue."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.served = 0  # waits ended, taken or let go: what a test waits for

    def take(self, fd: int, timeout: float) -> bool:
        """Take the file lock of `fd` within `timeout` seconds; False (and not taken) if it stayed held.

        OperationalError if the wait itself failed."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True  # free: the usual case when the service is not busy, with no thread hop
        except BlockingIOError:
            pass
        self._started()
        request = _Request(os.dup(fd))
        self._requests.put(request)
        request.done.wait(timeout)
        with request.guard:
            if request.taken:
                return True
            if request.failed:
                raise OperationalError("could not wait for the writers' lock (see the log)")
            request.abandoned = True  # the waiter lets the lock go again as soon as it gets it
            return False

    def _started(self) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="sqlite-writers-waiter", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            request = self._requests.get()
            try:
                fcntl.flock(request.fd, fcntl.LOCK_EX)
                with request.guard:
                    if request.abandoned:
                        fcntl.flock(request.fd, fcntl.LOCK_UN)
                    else:
                        request.taken = True
            except OSError:
                # Not taken: its writer gets an error now, and this thread serves the next.
                logger.exception("could not wait for the SQLite writers' lock")
                request.failed = True
            finally:
                os.close(request.fd)  # the lock stays with the connection's own descriptor
                self.served += 1  # before its writer goes on, so that what it sees counts this wait
                request.done.set()


_waiter = _Waiter()


def _forget_process_locks() -> None:
    # A fork copies the locks as they were, maybe held by a thread the child does not have, and not the
    # waiter's thread.
    global _in_process_guard, _waiter
    _in_process.clear()
    _in_process_guard = threading.Lock()
    _waiter = _Waiter()


os.register_at_fork(after_in_child=_forget_process_locks)


class DatabaseWrapper(base.DatabaseWrapper):
    _writers_fd: int | None = None
    _holding = False
    _process_lock: threading.Lock | None = None

    def _start_transaction_under_autocommit(self) -> None:
        self._take_turn()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # private, untyped in the stubs
        except BaseException:
            self._end_turn()
            raise

    def _commit(self) -> Any:
        try:
            return super()._commit()  # type: ignore[misc]
        finally:
            self._end_turn()

    def _rollback(self) -> Any:
        try:
            return super()._rollback()  # type: ignore[misc]
        finally:
            self._end_turn()

    def _close(self) -> Any:
        try:
            return super()._close()  # type: ignore[misc]
        finally:
            self._end_turn()
            if self._writers_fd is not None:
                os.close(self._writers_fd)
                self._writers_fd = None

    def _take_turn(self) -> None:
        if self._holding or self.is_in_memory_db():
            return
        name = str(self.settings_dict["NAME"])
        if self._writers_fd is None:
            self._writers_fd = os.open(f"{name}.writers", os.O_RDWR | os.O_CREAT, 0o600)
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + timeout
        process_lock = _process_lock(name)
        if not process_lock.acquire(timeout=timeout):
            raise OperationalError("database is locked (waited for this process's writers)")
        try:
            if not _waiter.take(self._writers_fd, max(0.0, deadline - time.monotonic())):
                raise OperationalError("database is locked (waited for the writers' lock)")
        except BaseException:
            process_lock.release()
            raise
        self._process_lock = process_lock
        self._holding = True

    def _end_turn(self) -> None:
        if self._holding and self._writers_fd is not None:
            fcntl.flock(self._writers_fd, fcntl.LOCK_UN)
        if self._process_lock is not None:
            self._process_lock.release()
            self._process_lock = None
        self._holding = False
