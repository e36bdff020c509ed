"""`manage.py runstack` (what `make run` calls) starts Redis, Daphne, a worker and Flower, and stops them all."""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import stack
from tests import procfs
from tests.integration.client import is_terminal_event, jobs_client, login

pytestmark = pytest.mark.integration

# The last line of the banner, printed once every process is ready.
READY_LINE = "  Mail "


@dataclass
class Running:
    process: subprocess.Popen[str]
    banner: str
    port: int
    flower_port: int
    redis_port: int
    var_dir: Path


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """The output of `process` up to the line holding `marker`."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError("runstack exited early:\n" + "".join(seen[-40:]))
        seen.append(line)
        if marker in line:
            return "".join(seen)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    port, flower_port, redis_port = stack.free_port(), stack.free_port(), stack.free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "FLOWER_BASIC_AUTH"}}
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings.local",
        VAR_DIR=str(tmp_path),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",  # nothing listens: runstack must start it
        PORT=str(port),
        FLOWER_PORT=str(flower_port),
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runstack"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        banner = read_until(process, READY_LINE, timeout=120)
        yield Running(process, banner, port, flower_port, redis_port, tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def http_status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def command_line(pid: int) -> bytes:
    """A process's command line as `ps` shows it to every local user (b"" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def test_the_run_command_serves_everything_and_stops_cleanly(running: Running) -> None:
    password = (running.var_dir / "local-admin-password").read_text().strip()
    base = f"http://127.0.0.1:{running.port}"
    assert f"admin / {password}" in running.banner
    assert f"http://localhost:{running.port}/" in running.banner
    assert f"http://127.0.0.1:{running.flower_port}/" in running.banner

    # Django answers (the dashboard asks for a login), Flower asks for its basic auth.
    assert http_status(f"{base}/accounts/login/") == 200
    flower = f"http://127.0.0.1:{running.flower_port}/"
    assert http_status(flower) == 401
    assert http_status(flower, f"admin:{password}") == 200
    # ...and no process of the stack shows that password on its command line, which any local user can read.
    command_lines = [command_line(pid) for pid in procfs.descendants(running.process.pid)]
    assert any(b"flower" in line for line in command_lines)
    assert not [line for line in command_lines if password.encode() in line]

    # The worker runs jobs: a countdown submitted over the socket succeeds.
    cookie = await asyncio.to_thread(login, base, "admin", password)
    async with jobs_client(f"ws://127.0.0.1:{running.port}/ws/jobs/", cookie, base) as client:
        job = await client.submit("demo.countdown", {"steps": 3})
        events = await client.receive_until(is_terminal_event(job["id"]))
    assert events[-1]["type"] == "job.succeeded"

    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=60) == 0
    for port in (running.port, running.flower_port, running.redis_port):
        assert not stack.port_open("127.0.0.1", port), f"port {port} still open after runstack stopped"
