"""Shared pieces of the benchmark suite (issue #7): a private stack, results, the table.

Every benchmark starts its own redis-server on a free 127.0.0.1 port, a
throw-away SQLite database in a temporary directory and, where it needs one,
its own Daphne, with the command lines of `core.stack`; it stops them and
removes the directory when it ends, also on error.

Django is set up once per process, so `python -m bench` runs each benchmark
module in its own subprocess and gathers their rows (`--json`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import stack

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

    def start_daphne(self) -> str:
        port = stack.free_port()
        with open(self.directory / "daphne.log", "wb") as log:
            process = subprocess.Popen(
                stack.daphne_command("127.0.0.1", port), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        self.daphne = process
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=process)
        self.ws_url = f"ws://127.0.0.1:{port}/ws/jobs/"
        return self.ws_url

    def child(self, *args: str) -> subprocess.Popen[bytes]:
        """A Python child process with this stack's environment (stdout piped, for its result)."""
        process = subprocess.Popen(
            stack.python_command(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.processes.append(process)
        return process


@contextmanager
def private_stack(extra_env: dict[str, str] | None = None, setup_django: bool = True) -> Iterator[Stack]:
    """Redis on a free port and a migrated SQLite file; this process's Django points at both."""
    directory = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    redis_url = f"redis://127.0.0.1:{stack.free_port()}/0"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.test",
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "VAR_DIR": str(directory / "var"),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
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
        stack.stop(bench_stack.processes, timeout=10)
        if redis_process is not None:
            stack.stop([redis_process])
        shutil.rmtree(directory, ignore_errors=True)


def _close_publisher() -> None:
    """Stop the publisher's loop while Redis still answers, so exit does not wait on a dead Redis."""
    try:
        from notifications.publish import publisher
    except Exception:  # Django never got set up
        return
    publisher.flush(timeout=2)
    publisher.reset()


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
