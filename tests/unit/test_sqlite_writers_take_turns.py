"""patches.sqlite: SQLite write transactions take turns on a file lock, not in SQLite's sleeping busy handler."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connections

from patches.sqlite import base as base_module
from patches.sqlite.base import DatabaseWrapper


@pytest.fixture
def database(tmp_path: Path, django_db_blocker: Any) -> Iterator[Path]:
    """A SQLite file of this test's own, with one table, whatever database the suite runs on."""
    path = tmp_path / "turns.sqlite3"
    with django_db_blocker.unblock():
        first = _wrapper(path)
        first.ensure_connection()
        first.cursor().execute("CREATE TABLE t (n INTEGER)")
        first.close()
        yield path


def _wrapper(path: Path, timeout: float = 20) -> Any:
    settings = {
        **connections["default"].settings_dict,
        "ENGINE": "patches.sqlite",
        "NAME": str(path),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": timeout},
    }
    return DatabaseWrapper(settings, alias="turns")


def _writers_lock_free(path: Path) -> bool:
    with open(f"{path}.writers", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


def test_a_transaction_holds_the_writers_lock_until_it_commits_or_rolls_back(database: Path) -> None:
    connection = _wrapper(database)
    connection.ensure_connection()
    for end in (connection._commit, connection._rollback, connection.close):
        connection.ensure_connection()
        connection._start_transaction_under_autocommit()
        connection.cursor().execute("INSERT INTO t VALUES (1)")
        assert not _writers_lock_free(database)
        end()
        assert _writers_lock_free(database)


def test_a_second_writer_begins_once_the_first_commits(database: Path) -> None:
    first = _wrapper(database)
    first.ensure_connection()
    first._start_transaction_under_autocommit()
    first.cursor().execute("INSERT INTO t VALUES (1)")
    order: list[str] = []

    def write() -> None:
        second = _wrapper(database)  # a connection belongs to the thread that made it
        second.ensure_connection()
        second._start_transaction_under_autocommit()
        order.append("second began")
        second.cursor().execute("INSERT INTO t VALUES (2)")
        second._commit()
        second.close()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and order == []  # it waits for the first writer's turn to end
    order.append("first committed")
    first._commit()
    thread.join(5)
    assert order == ["first committed", "second began"]
    assert first.cursor().execute("SELECT count(*) FROM t").fetchone() == (2,)
    first.close()


def test_a_writer_that_waits_past_the_timeout_gets_database_is_locked(database: Path) -> None:
    holder, waiter = _wrapper(database), _wrapper(database, timeout=0.2)
    holder.ensure_connection()
    holder._start_transaction_under_autocommit()
    try:
        waiter.ensure_connection()
        with pytest.raises(OperationalError, match="database is locked"):
            waiter._start_transaction_under_autocommit()
        assert not waiter._holding
    finally:
        holder._rollback()
        holder.close()
        waiter.close()


def test_threads_of_one_process_wait_for_their_turn_without_polling(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers of one process queue on a lock of the process: only the one at its head polls the file lock,
    so the thread holding the turn does not compete with the others for the GIL after each statement."""
    attempts: list[str] = []
    flock = fcntl.flock

    def counted(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX:
            attempts.append(threading.current_thread().name)
        flock(fd, operation)

    holder = _wrapper(database)
    holder.ensure_connection()
    holder._start_transaction_under_autocommit()
    monkeypatch.setattr(fcntl, "flock", counted)  # the module the patch calls it through
    began: list[str] = []

    def write() -> None:
        waiter = _wrapper(database)
        waiter.ensure_connection()
        waiter._start_transaction_under_autocommit()
        began.append(threading.current_thread().name)
        waiter.cursor().execute("INSERT INTO t VALUES (3)")
        waiter._commit()
        waiter.close()

    threads = [threading.Thread(target=write, name=f"waiter-{n}") for n in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    try:
        assert began == []
        assert attempts == []  # not one poll while the turn was taken in this process
    finally:
        holder._commit()
        holder.close()
    for thread in threads:
        thread.join(5)
    assert sorted(began) == ["waiter-0", "waiter-1", "waiter-2"]
    assert len(attempts) == 3  # each took the file lock once, at its turn


def test_a_forked_child_starts_with_its_own_process_locks(database: Path) -> None:
    held = base_module._process_lock(str(database))
    held.acquire()
    try:
        base_module._forget_process_locks()  # what os.register_at_fork runs in a child
        assert base_module._process_lock(str(database)) is not held
        assert base_module._process_lock(str(database)).acquire(blocking=False)
    finally:
        held.release()
        base_module._forget_process_locks()


def test_a_writer_waits_for_another_process_s_turn_and_gives_up_at_its_timeout(database: Path) -> None:
    """The file lock held by another open file (as another process holds it): the writer waits for it in the
    waiter thread, gets `database is locked` at its timeout, and the waiter lets the lock go once it gets it."""
    waiter = _wrapper(database, timeout=0.2)
    waiter.ensure_connection()
    served = base_module._waiter.served
    with open(f"{database}.writers", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(OperationalError, match="waited for the writers' lock"):
            waiter._start_transaction_under_autocommit()
        assert not waiter._holding
        fcntl.flock(other, fcntl.LOCK_UN)
    # The abandoned wait ends with the lock let go, so the next turn, in this process or another, is free.
    deadline = time.monotonic() + 5
    while base_module._waiter.served == served and time.monotonic() < deadline:
        time.sleep(0.01)
    assert base_module._waiter.served == served + 1
    assert _writers_lock_free(database)
    waiter._start_transaction_under_autocommit()
    assert waiter._holding
    waiter._rollback()
    waiter.close()


def test_a_writer_begins_when_another_process_s_turn_ends(database: Path) -> None:
    order: list[str] = []
    with open(f"{database}.writers", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX)

        def write() -> None:
            writer = _wrapper(database)
            writer.ensure_connection()
            writer._start_transaction_under_autocommit()
            order.append("writer began")
            writer._rollback()
            writer.close()

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and order == []
        order.append("other let go")
        fcntl.flock(other, fcntl.LOCK_UN)
        thread.join(5)
    assert order == ["other let go", "writer began"]


def test_a_wait_that_fails_answers_its_writer_and_the_waiter_serves_the_next(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the waiter's blocking flock fails that one writer with it (not with a timeout), and the
    waiter thread lives on to serve the next writer that has to wait."""
    writer = _wrapper(database, timeout=20)
    writer.ensure_connection()
    flock = fcntl.flock
    failures = [OSError(9, "injected")]
    waiting = threading.Event()

    def failing(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX:  # the waiter's blocking call: the first one fails
            if failures:
                raise failures.pop()
            waiting.set()
        flock(fd, operation)

    def let_go_once_waited_for(fd: int) -> None:
        waiting.wait(10)
        flock(fd, fcntl.LOCK_UN)

    with open(f"{database}.writers", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        monkeypatch.setattr(fcntl, "flock", failing)
        with pytest.raises(OperationalError, match="could not wait for the writers' lock"):
            writer._start_transaction_under_autocommit()
        assert not writer._holding
        served = base_module._waiter.served
        threading.Thread(target=let_go_once_waited_for, args=(other.fileno(),)).start()
        writer._start_transaction_under_autocommit()  # waits in the waiter until the other lets go
    assert writer._holding
    assert base_module._waiter.served == served + 1
    writer._rollback()
    writer.close()
