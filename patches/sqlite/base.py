"""Django's SQLite backend, with write transactions that take turns on a file lock, not on SQLite's busy handler.

Every transaction here is IMMEDIATE (core.settings): it takes SQLite's write lock at BEGIN. When
another connection (Daphne's threads, each worker process) holds it, SQLite's busy handler sleeps
and tries again, sleeping 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms at a time: under a
steady stream of short transactions a waiter keeps waking to find the lock taken again, and the
worker's claims waited most of their time there (docs/benchmarks.md, "where the time goes").

So a transaction first takes an exclusive `flock` on `<database>.writers`, held until it commits or
rolls back, so that it never waits in SQLite's handler. A waiter tries that lock again after 0.1, 0.2,
0.5 and then every 1 ms, so it starts within a millisecond of the lock coming free. The wait is
bounded by the database's `timeout` option, as SQLite's own is (then "database is locked"). Writes
outside a transaction (autocommit) still meet SQLite's lock alone; the service writes in transactions.

Threads of one process (Daphne's database threads) first queue on a lock of the process, blocked in the
kernel, so that only one of them polls the file lock. Each poll takes the GIL: with every waiting thread
polling, the thread holding the turn waited for the GIL after each of its statements, and Daphne held the
write lock three times as long as its CPU needed (docs/benchmarks.md, "Throughput").
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

POLL_SECONDS = (0.0001, 0.0002, 0.0005, 0.001)  # then every 1 ms

# One per database file: this process's threads take turns on it before the file lock.
_in_process: dict[str, threading.Lock] = {}
_in_process_guard = threading.Lock()


def _process_lock(name: str) -> threading.Lock:
    with _in_process_guard:
        return _in_process.setdefault(name, threading.Lock())


def _forget_process_locks() -> None:
    # A fork copies the locks as they were, maybe held by a thread the child does not have.
    global _in_process_guard
    _in_process.clear()
    _in_process_guard = threading.Lock()


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
        deadline, attempt = time.monotonic() + timeout, 0
        process_lock = _process_lock(name)
        if not process_lock.acquire(timeout=timeout):
            raise OperationalError("database is locked (waited for this process's writers)")
        try:
            while True:
                try:
                    fcntl.flock(self._writers_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OperationalError("database is locked (waited for the writers' lock)") from None
                    time.sleep(POLL_SECONDS[min(attempt, len(POLL_SECONDS) - 1)])
                    attempt += 1
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
