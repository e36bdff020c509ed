"""A stack of real processes that the fault tests may break: its own redis-server (stopped and
started empty), Celery workers (SIGKILLed), Celery beat running the reconciler every second,
and Daphne; with liveness timings shortened so recovery happens within seconds.

`rabbitmq_fault_stack` is the same stack with its Celery broker on the machine's RabbitMQ, in a
vhost of its own (tests.rabbitmq); `each_broker_stack` runs a test on both."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from core import stack
from tests import procfs
from tests.integration.conftest import database_url
from tests.integration.idle import settle
from tests.rabbitmq import private_vhost
from tests.smtp import SmtpServer, serving

FAST_RECOVERY = {
    "JOBS_RECONCILE_SECONDS": "1",
    "JOBS_REQUEUE_AFTER_SECONDS": "2",
    "JOBS_HEARTBEAT_SECONDS": "0.5",
    "JOBS_LEASE_SECONDS": "2",
    # A process frozen inside a transaction (the lease test's SIGSTOP may land there) loses its session after
    # this long, and the reconciler waits this long for a row lock (PostgreSQL).
    "DATABASE_IDLE_IN_TRANSACTION_SECONDS": "5",
    "JOBS_RECONCILE_LOCK_WAIT_SECONDS": "0.5",
    "JOBS_PROGRESS_INTERVAL": "0.05",
    # The fault tests open more sockets per user than a person would; the limit has tests of its own.
    "RATE_LIMIT_CONNECTIONS_PER_USER": "100",
    # A kind only the limit's test runs (test_concurrency_limit_across_workers.py).
    "JOBS_CONCURRENCY": "test.table=2",
}


@dataclass
class FaultStack:
    redis_url: str
    redis_dir: Path
    env: dict[str, str]
    logs: Path
    smtp: SmtpServer
    base_url: str = ""
    redis: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    daphne: subprocess.Popen[bytes] | None = None
    broker_url: str = ""  # the Celery broker when it is not redis_url (a RabbitMQ vhost)
    beat: subprocess.Popen[bytes] | None = None

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws/jobs/"

    def start_redis(self) -> None:
        """A fresh, empty redis-server on the stack's port (nothing is persisted)."""
        self.redis = stack.start_redis(self.redis_url, self.redis_dir)

    def stop_redis(self) -> None:
        assert self.redis is not None
        stack.stop([self.redis])
        self.redis = None

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        name = f"fault-worker-{len(self.workers)}"
        worker = self._spawn(name, stack.worker_command(name, concurrency=concurrency), new_session=True)
        self.workers.append(worker)
        stack.wait_until(lambda: self.worker_answers(name), name, timeout=60, process=worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """Stop a worker as a deploy does (SIGTERM, a warm shutdown) and forget it: the tests after use
        `workers[-1]`, the last one started that still runs."""
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        self.workers.remove(worker)

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once, as a crashed machine would."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    def pool_processes(self, worker: subprocess.Popen[bytes]) -> list[int]:
        return procfs.children(worker.pid)

    def client_app(self) -> Celery:
        """A Celery app that sends tasks as the stack's processes do: on RabbitMQ, a queue declared
        without their x-max-priority would be refused (PRECONDITION_FAILED)."""
        app = Celery(broker=self.broker, set_as_current=False)
        if self.broker_url:
            app.conf.task_queue_max_priority = settings.RABBITMQ_MAX_PRIORITY
        return app

    def worker_answers(self, name: str) -> bool:
        app = Celery(broker=self.broker, set_as_current=False)
        try:
            replies = app.control.ping(timeout=0.5) or []
        except (OSError, redis.RedisError):  # a connection left over from before a Redis restart
            return False
        finally:
            app.close()
        return any(node.startswith(f"{name}@") for reply in replies for node in reply)

    def active_tasks(self) -> list[Any]:
        app = Celery(broker=self.broker, set_as_current=False)
        try:
            replies = app.control.inspect(timeout=1).active() or {}
        finally:
            app.close()
        return [task for tasks in replies.values() for task in tasks]

    def _spawn(self, name: str, command: list[str], new_session: bool = False) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session
            )

    def start_rest(self) -> None:
        beat = self.beat = self._spawn("beat", stack.beat_command(Path(self.env["VAR_DIR"]) / "celerybeat-schedule"))
        self.others.append(beat)
        self.start_daphne(stack.free_port())
        RUNNING.append(self)

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Pause the beat (so the reconciler) of every other running stack meanwhile. They share the test
        database: another stack's reconciler would find this one's queued jobs missing from its own broker,
        send them there and run them itself."""
        others = [faults for faults in RUNNING if faults is not self]
        for faults in others:
            faults.signal_beat(signal.SIGSTOP)
        try:
            yield
        finally:
            for faults in others:
                faults.signal_beat(signal.SIGCONT)

    def signal_beat(self, signum: int) -> None:
        if self.beat is not None and self.beat.poll() is None:
            self.beat.send_signal(signum)

    def start_daphne(self, port: int) -> subprocess.Popen[bytes]:
        daphne = self.daphne = self._spawn("daphne", stack.daphne_command("127.0.0.1", port))
        self.others.append(daphne)
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=daphne)
        self.base_url = f"http://127.0.0.1:{port}"
        return daphne

    def restart_daphne(self) -> subprocess.Popen[bytes]:
        """SIGTERM Daphne, as a deploy does, then start a new one on the same port."""
        assert self.daphne is not None
        port = int(self.base_url.rsplit(":", 1)[1])
        stack.stop([self.daphne])
        return self.start_daphne(port)

    def settle(self) -> None:
        """Cancel what a test left unfinished; wait until the live workers, beat and Daphne leave the database alone."""
        live_workers = sum(1 for worker in self.workers if worker.poll() is None)
        broker_up = self.redis is not None or self.broker_url != ""
        settle(self.broker if broker_up else None, workers=live_workers)

    def stop_all(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        stack.stop([*self.workers, *self.others, *([self.redis] if self.redis else [])])


@pytest.fixture(scope="package")
def fault_stack(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    with running_stack(django_db_blocker, tmp_path_factory, broker_url="") as faults:
        yield faults


# The stacks started and not stopped yet (FaultStack.alone pauses the others' reconcilers).
RUNNING: list[FaultStack] = []


@pytest.fixture(scope="module")
def rabbitmq_fault_stack(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    """Module-scoped, so it never runs beside the Redis tests that follow: the fault stack's reconciler
    is paused while it lives (FaultStack.alone)."""
    with (
        private_vhost() as url,
        running_stack(django_db_blocker, tmp_path_factory, broker_url=url) as faults,
        faults.alone(),
    ):
        yield faults


@pytest.fixture(
    params=[
        pytest.param("fault_stack", id="redis"),
        pytest.param("rabbitmq_fault_stack", id="rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def each_broker_stack(request: pytest.FixtureRequest) -> FaultStack:
    """The fault stack on each broker in turn: the test runs once on Redis, once on RabbitMQ."""
    faults: FaultStack = request.getfixturevalue(request.param)
    return faults


@contextmanager
def running_stack(
    django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory, broker_url: str
) -> Iterator[FaultStack]:
    """Start the stack (its broker: its own Redis, or `broker_url`); stop it on the way out."""
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    redis_url = f"redis://127.0.0.1:{stack.free_port()}/0"
    with serving() as smtp:
        env = {
            **os.environ,
            **FAST_RECOVERY,
            "DJANGO_SETTINGS_MODULE": "core.settings.test",
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url or redis_url,
            # What docs/operations.md has operators set on RabbitMQ for the kinds' limits (up to 31 minutes);
            # the machine's shared server keeps its default 30, which no test job comes near.
            **({"RABBITMQ_CONSUMER_TIMEOUT": str(45 * 60)} if broker_url else {}),
            "EMAIL_URL": smtp.url,
            "VAR_DIR": str(tmp_path_factory.mktemp("fault-var")),
            "PYTHONUNBUFFERED": "1",
        }
        faults = FaultStack(
            redis_url,
            tmp_path_factory.mktemp("fault-redis"),
            env,
            tmp_path_factory.mktemp("fault-logs"),
            smtp,
            broker_url=broker_url,
        )
        try:
            faults.start_redis()
            faults.start_worker()
            faults.start_rest()
            yield faults
        finally:
            faults.stop_all()
