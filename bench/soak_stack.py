"""The soak's private stack: every process it breaks is its own (bench.soak).

A PostgreSQL cluster made with initdb in a temporary directory, on a free port
(trust auth, never the machine's 5432); a redis-server on a free port that keeps
an append-only file, so it can be killed and started again with or without its
data; Daphnes on fixed ports (a restart reuses the port); two Celery workers,
each in a session of its own (killpg kills its pool too) and restarted by a
supervisor thread when they die; Celery beat. Optionally the Celery broker is a
vhost of its own on the machine's RabbitMQ (that server is never restarted).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from core import stack
from tests import procfs

PG_BIN = Path("/usr/local/bin")
WORKER_CONCURRENCY = 2
SUPERVISE_EVERY = 0.5  # seconds between two looks of the supervisor at its workers


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _run(command: list[str], timeout: float) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise stack.StackError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")


@dataclass
class Postgres:
    """A private PostgreSQL cluster: initdb'd into `directory`, listening on 127.0.0.1:`port` only."""

    directory: Path
    port: int = field(default_factory=stack.free_port)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/soak"

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The postgres user must reach its directory inside our (private, 0700) temporary one.
            self.directory.parent.chmod(0o711)
            shutil.chown(self.directory, "postgres", "postgres")
        command = [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        _run(_as_postgres(command), timeout=120)
        self.start()
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE soak")

    def start(self) -> None:
        # fsync off: the faults kill processes, never the machine, and what a commit wrote reaches the
        # kernel before the commit returns, so a crash (stop -m immediate) loses nothing committed. Not
        # synchronous_commit=off: that returns before the write, and a crash then loses acknowledged jobs.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "pg.log")]
        _run(_as_postgres([*command, "-w", "-t", "60", "-o", options, "start"]), timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` rolls back open transactions, `immediate` is a crash (recovery at the next start)."""
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
        subprocess.run(_as_postgres(command), check=False, capture_output=True, timeout=90)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


@dataclass
class Redis:
    """A private redis-server that keeps an append-only file (fsync every second) in `directory`."""

    directory: Path
    port: int = field(default_factory=stack.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "redis-server"
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        with open(self.directory.parent / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        stack.wait_until(lambda: stack.redis_answers(self.url), "redis-server", timeout=30, process=self.process)

    def kill(self, keep_data: bool) -> None:
        """SIGKILL it (nothing flushed but what fsync already wrote); without `keep_data` its files go too."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        if not keep_data:
            shutil.rmtree(self.directory, ignore_errors=True)

    def stop(self) -> None:
        if self.process is not None:
            stack.stop([self.process], timeout=5)
            self.process = None


@dataclass
class Services:
    """Daphnes, workers and beat of the soak, with the environment they share."""

    directory: Path
    env: dict[str, str]
    daphne_ports: list[int]
    daphnes: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    beat: subprocess.Popen[bytes] | None = None
    worker_restarts: int = 0
    started_at: dict[int, float] = field(default_factory=dict)  # pid -> time.time() it was started
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    def ws_url(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.daphne_ports[index]}/ws/jobs/"

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with open(self.directory / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started_at[process.pid] = time.time()
        return process

    def start_daphne(self, index: int) -> subprocess.Popen[bytes]:
        port = self.daphne_ports[index]
        process = self._spawn(f"daphne-{index}", stack.daphne_command("127.0.0.1", port))
        while len(self.daphnes) <= index:
            self.daphnes.append(None)
        self.daphnes[index] = process
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=120, process=process)
        return process

    def start_worker(self, index: int) -> subprocess.Popen[bytes]:
        name = f"soak-worker-{index}"
        process = self._spawn(name, stack.worker_command(name, WORKER_CONCURRENCY, loglevel="WARNING"))
        while len(self.workers) <= index:
            self.workers.append(None)
        self.workers[index] = process
        return process

    def start_beat(self) -> None:
        self.beat = self._spawn("beat", stack.beat_command(self.directory / "celerybeat-schedule", "WARNING"))

    def pool_pids(self, index: int) -> list[int]:
        worker = self.workers[index]
        return procfs.children(worker.pid) if worker is not None and worker.poll() is None else []

    def kill_worker(self, index: int) -> None:
        """SIGKILL the whole worker, pool included; the supervisor starts a new one."""
        worker = self.workers[index]
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)

    def supervise(self, on_restart: Callable[[int], None]) -> threading.Thread:
        """Start a thread that starts again any worker that has exited, until `stop_supervising`."""

        def loop() -> None:
            while not self._stop.wait(SUPERVISE_EVERY):
                for index, worker in enumerate(self.workers):
                    if worker is not None and worker.poll() is not None and not self._stop.is_set():
                        self.start_worker(index)
                        self.worker_restarts += 1
                        on_restart(index)

        self._supervisor = threading.Thread(target=loop, name="soak-supervisor", daemon=True)
        self._supervisor.start()
        return self._supervisor

    def stop_supervising(self) -> None:
        """Stop the supervisor and wait for it, so it starts no worker after this."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=60)

    def stop_all(self) -> None:
        self.stop_supervising()
        processes = [p for p in [*self.workers, self.beat, *self.daphnes] if p is not None]
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # Celery's pool is in the same session
        stack.stop(processes, timeout=15)
        for process in processes:  # anything its leader left behind (a pool process)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these processes together, in MiB (0 for those gone)."""
    total = 0
    for pid in pids:
        try:
            total += procfs.rss_kib(pid)
        except (OSError, RuntimeError):
            continue
    return total / 1024
