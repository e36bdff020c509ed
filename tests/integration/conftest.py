"""Real processes for integration tests: a private redis-server, a Celery worker
and Daphne, started with the same command lines as `manage.py runstack`
(core.stack), sharing the test database with this process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection

from accounts import tokens
from core import stack
from tests.integration.cli_process import Cli
from tests.integration.idle import settle
from tests.smtp import SmtpServer, serving


@dataclass
class LiveStack:
    base_url: str
    ws_url: str
    env: dict[str, str]
    logs: Path

    def settle(self) -> None:
        """Cancel what a test left unfinished; wait until the worker and Daphne leave the database alone."""
        settle(self.env["CELERY_BROKER_URL"], workers=1)


def database_url(settings_dict: dict[str, Any]) -> str:
    """The URL of the test database this process uses, for the processes it starts."""
    if "sqlite" in settings_dict["ENGINE"]:
        return f"sqlite:///{settings_dict['NAME']}"
    auth = settings_dict["USER"] + (f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else "")
    host = f"{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private, throw-away redis-server: nothing shared with other users of the machine."""
    url = f"redis://127.0.0.1:{stack.free_port()}/0"
    process = stack.start_redis(url, tmp_path_factory.mktemp("redis"))
    yield url
    stack.stop([process])


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server for the worker (EMAIL_URL): every email the jobs send arrives here."""
    with serving() as server:
        yield server


def worker_answers(broker_url: str, name: str | None = None) -> bool:
    """Did a Celery worker on this broker (the one started with `--hostname name@…`, if given) answer a ping?"""
    app = Celery(broker=broker_url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=0.5) or []
    finally:
        app.close()
    return any(name is None or node.startswith(f"{name}@") for reply in replies for node in reply)


def service_env(db_url: str, redis_url: str, directories: pytest.TempPathFactory, **extra: str) -> dict[str, str]:
    """The environment of the service processes a test starts: test settings on this run's database,
    `redis_url` (the broker too, unless `extra` names CELERY_BROKER_URL), their own VAR_DIR and metrics
    directory (/metrics sums every process), and `extra`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.test",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "VAR_DIR": str(directories.mktemp("var")),
        "PYTHONUNBUFFERED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(directories.mktemp("metrics")),
        **extra,
    }


@dataclass
class Started:
    worker: subprocess.Popen[bytes]
    daphne: subprocess.Popen[bytes]
    port: int


@contextmanager
def worker_and_daphne(worker_command: list[str], env: dict[str, str], logs: Path) -> Iterator[Started]:
    """A Celery worker and Daphne on a free port, both answering; stopped on the way out."""
    port = stack.free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in (("worker", worker_command), ("daphne", stack.daphne_command("127.0.0.1", port))):
            with open(logs / f"{name}.log", "wb") as log:
                processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        worker, daphne = processes
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=daphne)
        stack.wait_until(lambda: worker_answers(env["CELERY_BROKER_URL"]), "Celery worker", timeout=60, process=worker)
        yield Started(worker, daphne, port)
    finally:
        stack.stop(processes)


@pytest.fixture(scope="session")
def live_stack(
    django_db_setup: None,
    django_db_blocker: Any,
    redis_url: str,
    smtp_server: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveStack]:
    logs = tmp_path_factory.mktemp("logs")
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    env = service_env(db_url, redis_url, tmp_path_factory, EMAIL_URL=smtp_server.url)
    with worker_and_daphne(stack.worker_command("test-worker", 2), env, logs) as started:
        port = started.port
        yield LiveStack(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/jobs/", env, logs)


# The fixtures of stacks of real processes that tests share; each has a settle() method.
SHARED_STACKS = ("live_stack", "fault_stack", "rabbitmq_fault_stack")


@pytest.fixture(autouse=True)
def stack_left_idle(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[None]:
    """After a test that used a shared stack: cancel what it left unfinished and wait until the stack is idle.

    Autouse fixtures of plugins are set up first, so pytest-django's database fixture
    is torn down (the flush) after this one: the stack never races the flush.
    """
    yield
    for name in SHARED_STACKS:
        if name in request.fixturenames:
            with django_db_blocker.unblock():
                request.getfixturevalue(name).settle()


@pytest.fixture
def cli(live_stack: LiveStack, user: Any) -> Cli:
    """jobsctl with a token of `user` against the live stack."""
    _, raw = tokens.create(user, "cli tests")
    return Cli(live_stack, raw)
