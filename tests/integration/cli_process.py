"""jobsctl as a process against the live stack: run to the end, or started and read line by line."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[2]


class Stack(Protocol):
    """What jobsctl needs of a stack (tests.integration.conftest.LiveStack)."""

    base_url: str
    env: dict[str, str]


class Following:
    """A jobsctl process still running: its stderr read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 60) -> re.Match[str]:
        """The first stderr line matching `pattern` (readiness, not a sleep)."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError("jobsctl exited early:\n" + "".join(self.seen))
            self.seen.append(line)
            if match := compiled.search(line):
                return match

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Exit code, stdout, and the whole of stderr."""
        assert self.process.stdout is not None
        code = self.process.wait(timeout)
        out = self.process.stdout.read()
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return code, out, "".join(self.seen)


@dataclass
class Cli:
    stack: Stack
    token: str

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "JOBS_URL": self.stack.base_url, "JOBS_TOKEN": self.token, **extra}

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jobsctl", *args]
        return subprocess.run(command, cwd=ROOT, env=env or self.env(), capture_output=True, text=True, timeout=90)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Following:
        command = [sys.executable, "-m", "jobsctl", *args]
        pipes: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        return Following(subprocess.Popen(command, cwd=ROOT, env=env or self.env(), text=True, **pipes))
