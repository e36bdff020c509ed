"""Starting the service's processes: shared by `manage.py runstack` and the
integration tests, so the tests exercise the same command lines people run."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import redis

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class StackError(RuntimeError):
    """A process of the stack could not be started; the message says what to do."""


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def start_redis(url: str, directory: Path) -> subprocess.Popen[bytes]:
    """Start a private, non-persistent redis-server for a local URL that nothing answers."""
    parts = urlsplit(url)
    if parts.hostname not in LOCAL_HOSTS:
        raise StackError(f"Redis at {url} does not answer, and it is not local, so it cannot be started here.")
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            "Nothing answers at REDIS_URL and redis-server is not installed. Install it "
            "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) "
            "or point REDIS_URL at a running Redis."
        )
    directory.mkdir(parents=True, exist_ok=True)
    command = [binary, "--bind", "127.0.0.1", "--port", str(parts.port or 6379), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_until(lambda: redis_answers(url), f"redis-server on {url}", timeout=10, process=process)
    return process


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def daphne_command(host: str, port: int, *options: str) -> list[str]:
    """The web server as every deployment runs it (core.daphne adds the standard options), plus `options`."""
    return python_command("-m", "core.daphne", "--bind", host, "--port", str(port), *options)


def worker_command(name: str, concurrency: int, loglevel: str = "INFO") -> list[str]:
    return python_command(
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "--hostname",
        f"{name}@%h",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
    )


def beat_command(schedule_file: Path, loglevel: str = "INFO") -> list[str]:
    """Celery beat: runs the periodic tasks (the reconciler, housekeeping). Run exactly one."""
    return python_command(
        "-m", "celery", "-A", "celery_app", "beat", "--schedule", str(schedule_file), "--loglevel", loglevel
    )


def flower_command(host: str, port: int) -> list[str]:
    """Flower bound to host:port. Its login goes in FLOWER_BASIC_AUTH (`user:password`), never in the command.

    A command line is readable by every local user (`ps`, /proc/<pid>/cmdline); the
    environment only by the process's owner. Flower reads FLOWER_<OPTION> variables itself.
    """
    return python_command("-m", "celery", "-A", "celery_app", "flower", f"--address={host}", f"--port={port}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll `ready` until it holds; fail fast if the process we wait on has exited."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process is not None and process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} before it was ready.")
        if time.monotonic() > deadline:
            raise StackError(f"{what} was not ready within {timeout:.0f} s.")
        time.sleep(0.05)


def stop(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """SIGTERM every process (Celery finishes its current task, Daphne closes sockets), then SIGKILL stragglers."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
