"""patches.sqlite: SQLite write transactions take turns on a file lock, not in SQLite's sleeping busy handler."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connections

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
