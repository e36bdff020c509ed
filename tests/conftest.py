from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from core import stack
from notifications import notices
from tests.factories import UserFactory
from tests.rabbitmq import private_vhost
from transport.publisher import publisher

# Browser-test modules import their marks from this helper before pytest loads it as a
# plugin; registering it keeps pytest's assertion rewriting for its asserts.
pytest.register_assert_rewrite("tests.integration.browser")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private, throw-away redis-server for this test session: `redis://127.0.0.1:<port>` (add /<db>)."""
    base = f"redis://127.0.0.1:{stack.free_port()}"
    process = stack.start_redis(f"{base}/0", tmp_path_factory.mktemp("redis"))
    yield base
    stack.stop([process])


@pytest.fixture(scope="module")
def rabbitmq_vhost() -> Iterator[str]:
    """A broker URL on the machine's RabbitMQ, in a vhost of this module's own (tests.rabbitmq)."""
    with private_vhost() as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_notice_copy() -> None:
    """Each test starts without this process's copy of the unexpired notices (notifications.notices): it
    could hold rows of an earlier test, which its transaction's rollback removed without a broadcast."""
    notices.forget_unexpired()


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def other_user(db: None) -> User:
    return UserFactory.create()


class Published(list[tuple[str, dict[str, Any]]]):
    """Frames the publisher was asked to send: (group, decoded message)."""

    def to_owners(self) -> list[dict[str, Any]]:
        """The frames sent to users' groups: the job events every socket of the owner gets
        (not the log lines, which go to the sockets that follow a job's log)."""
        return [message for group, message in self if group.startswith("user.")]

    def types(self) -> list[str]:
        return [message["type"] for message in self.to_owners()]

    def seqs(self) -> list[int]:
        return [message["seq"] if "seq" in message else message["job"]["seq"] for message in self.to_owners()]


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Published:
    """Capture what would be published, decoding each frame so a payload that is not JSON fails here."""
    captured = Published()

    def capture(group: str, text: str) -> None:
        captured.append((group, json.loads(text)))

    monkeypatch.setattr(publisher, "send", capture)
    return captured


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """pytest-django drops the SQLite test database file, but not its WAL and shared-memory files, nor its
    writers' lock (patches.sqlite)."""
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if "sqlite" in settings.DATABASES["default"]["ENGINE"] and name:
        for suffix in ("-wal", "-shm", ".writers"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def drop_leftover_database_sessions(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Let pytest-django drop the PostgreSQL test database at the end.

    Executor threads of asgiref and Channels can keep an idle connection open
    after the last test; PostgreSQL refuses to drop a database with sessions
    on it. Processes the tests started are stopped before this runs.
    """
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
