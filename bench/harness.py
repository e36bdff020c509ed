"""Shared pieces of the benchmark suite: a private stack, results, the table.

Every benchmark starts its own redis-server on a free 127.0.0.1 port, a
throw-away SQLite database in a temporary directory and, where it needs one,
its own Daphne, with the command lines of `core.stack`; it stops them and
removes the directory when it ends, also on error.

Django is set up once per process, so `python -m bench` runs each benchmark
module in its own subprocess and gathers their rows (`--json`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from websockets.asyncio.client import connect

from core import stack

DEFAULT_ASGI = "core.asgi:application"
NOISE_NOTE = (
    "Measured on a shared machine ({cpus} CPUs, Python {python}) while other work may run: "
    "figures are noisy, compare baseline and ours from the same run, not across runs."
)


@dataclass
class Row:
    benchmark: str
    metric: str
    baseline: str
    ours: str
    target: str = ""
    met: bool | None = None  # None: no target, or not measured


@dataclass
class Stack:
    """A private Redis and SQLite database (and Daphne, when started) for one benchmark."""

    directory: Path
    redis_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    daphne: subprocess.Popen[bytes] | None = None
    ws_url: str = ""

    def start_daphne(
        self, application: str = DEFAULT_ASGI, env: dict[str, str] | None = None, port: int | None = None
    ) -> str:
        """Start Daphne (core.stack's command line) serving `application`, with `env` over the stack's.

        On a free port, or on `port` (a restart on the same port: the one before must have exited).
        """
        port = stack.free_port() if port is None else port
        command = stack.daphne_command("127.0.0.1", port, "--app", application)
        with open(self.directory / "daphne.log", "ab") as log:
            process = subprocess.Popen(command, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.daphne = process
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=process)
        self.ws_url = f"ws://127.0.0.1:{port}/ws/jobs/"
        return self.ws_url

    def stop_daphne(self) -> None:
        """Stop the Daphne started last (SIGTERM, then SIGKILL after 10 s), e.g. before starting another."""
        if self.daphne is not None:
            self.stop(self.daphne)
            self.daphne = None

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
        stack.stop([process], timeout=timeout)
        if process in self.processes:
            self.processes.remove(process)

    def child(self, *args: str) -> subprocess.Popen[bytes]:
        """A Python child process with this stack's environment (stdout piped, for its result)."""
        process = subprocess.Popen(
            stack.python_command(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.processes.append(process)
        return process

    def talker(self, name: str, *args: str, env: dict[str, str] | None = None) -> Talker:
        """A Python child process driven line by line over stdin/stdout; its stderr goes to NAME.log."""
        with open(self.directory / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                stack.python_command(*args),
                env={**self.env, **(env or {})},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.processes.append(process)
        return Talker(name, process)


class Talker:
    """One child process's line protocol: JSON lines in on stdin, JSON lines out on stdout.

    A thread reads stdout into a queue, so a read can time out (and notice the
    child died) instead of blocking the benchmark forever.
    """

    def __init__(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.process = process
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # end of file: the child exited

    def send(self, message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> Any:
        """The child's next JSON line; RuntimeError if it exits or says nothing for `timeout` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} sent nothing within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError(f"{self.name} exited (code {self.process.wait()}); see its log")
        return json.loads(line)

    def close(self, timeout: float = 30) -> None:
        """Close its stdin (which tells a child to finish) and wait for it to exit."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            stack.stop([self.process], timeout=5)


def child_lines() -> Iterator[Any]:
    """In a talker child: the JSON lines its parent sends, until the parent closes stdin."""
    for line in sys.stdin:
        if line.strip():
            yield json.loads(line)


def child_say(message: Any) -> None:
    """In a talker child: one JSON line to the parent."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


@contextmanager
def private_database(directory: Path) -> Iterator[str]:
    """The DATABASE_URL of a private, empty database: a SQLite file in `directory`, or,
    when BENCH_DATABASE_URL names a PostgreSQL server, a database made on it for this run."""
    server = os.environ.get("BENCH_DATABASE_URL", "")
    if not server.startswith("postgres"):
        yield f"sqlite:///{directory / 'db.sqlite3'}"
        return
    import psycopg

    name = f"jobs_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # a name made here, not input
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def private_stack(extra_env: dict[str, str] | None = None, setup_django: bool = True) -> Iterator[Stack]:
    """Redis on a free port and a migrated private database (SQLite, or BENCH_DATABASE_URL's
    PostgreSQL); this process's Django points at both."""
    directory = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    with (
        private_database(directory) as database_url,
        _private_stack(directory, database_url, extra_env, setup_django) as bench_stack,
    ):
        yield bench_stack


@contextmanager
def _private_stack(
    directory: Path, database_url: str, extra_env: dict[str, str] | None, setup_django: bool
) -> Iterator[Stack]:
    redis_url = f"redis://127.0.0.1:{stack.free_port()}/0"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VAR_DIR": str(directory / "var"),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        # core.settings.test closes connections after each use (for its own test
        # databases); the processes measured here reuse them, as deployed.
        "DATABASE_CONN_MAX_AGE": "60",
        **(extra_env or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    redis_process = None
    bench_stack = Stack(directory, redis_url, env)
    if threading.current_thread() is threading.main_thread():
        # `python -m bench` stops a benchmark past its limit with SIGTERM: clean up on the way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        redis_process = stack.start_redis(redis_url, directory / "redis")
        if setup_django:
            os.environ.update(env)
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0, interactive=False)
        yield bench_stack
    finally:
        if setup_django:
            _close_publisher()
            from django.db import connections

            connections.close_all()  # so the private database can be dropped
        stack.stop(bench_stack.processes, timeout=10)
        if redis_process is not None:
            stack.stop([redis_process])
        shutil.rmtree(directory, ignore_errors=True)


def _close_publisher() -> None:
    """Stop the publisher's loop while Redis still answers, so exit does not wait on a dead Redis."""
    try:
        from transport.publisher import publisher
    except Exception:  # Django never got set up
        return
    publisher.flush(timeout=2)
    publisher.reset()


def celery_app(name: str, **settings: Any) -> Celery:
    """A benchmark's own Celery app on the private stack's broker (REDIS_URL, which its worker inherits),
    delivering as the service does: json, acknowledged late, one task at a time, no results."""
    app = Celery(name, set_as_current=False, fixups=settings.pop("fixups", None))
    app.conf.update(
        broker_url=os.environ.get("REDIS_URL"),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        **settings,
    )
    return app


def make_user(username: str = "bench") -> tuple[Any, str]:
    """A user and an API token for it (a token socket needs no Origin and no login form)."""
    from django.contrib.auth.models import User

    from accounts import tokens

    user = User.objects.create_user(username=username, password="bench-only")  # noqa: S106
    _, raw = tokens.create(user, "bench")
    return user, raw


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1e6:.1f} µs"


def noise_note() -> str:
    return NOISE_NOTE.format(cpus=os.cpu_count(), python=platform.python_version())


def format_table(rows: Sequence[Row]) -> str:
    header = ("benchmark", "metric", "baseline", "ours", "target", "met?")
    cells = [header] + [
        (r.benchmark, r.metric, r.baseline, r.ours, r.target, {True: "yes", False: "NO", None: "-"}[r.met])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parser(description: str | None) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--json", type=Path, help="also write the rows to this file (used by python -m bench)")
    return result


def report(rows: Sequence[Row], json_path: Path | None) -> None:
    print(format_table(rows))
    print(noise_note())
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in rows]))
    sys.stdout.flush()


def load_rows(path: Path) -> list[Row]:
    return [Row(**item) for item in json.loads(path.read_text())]


# --- measuring processes and opening client sockets, for the benchmarks that need them -----------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3 of stat(5), utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_sockets(
    ws_url: str,
    tokens: Sequence[str],
    in_flight: int,
    until: float | None = None,
    opened_at: list[float] | None = None,
) -> list[Any | None]:
    """One token socket per entry of `tokens` (repeat a token for several sockets of one user).

    At most `in_flight` handshakes at a time; each counts as open once its first
    frame (the hello) has arrived within 30 s. No handshake starts after `until`
    (a time.time() value), if given. Returns one entry per token, in order: the
    open socket, or None where it failed or never started; appends the time.time()
    at which each hello arrived to `opened_at`, if given.
    """
    limit = asyncio.Semaphore(in_flight)

    async def one(token: str) -> Any:
        async with limit:
            if until is not None and time.time() > until:
                return None
            try:
                socket = await connect(
                    ws_url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=30,
                    ping_interval=None,
                    max_queue=None,
                )
            except Exception:
                return None
            try:
                hello = json.loads(await asyncio.wait_for(socket.recv(), 30))
                assert hello["type"] == "hello", hello
            except Exception:
                await socket.close()
                return None
            if opened_at is not None:
                opened_at.append(time.time())
            return socket

    return list(await asyncio.gather(*(one(token) for token in tokens)))
