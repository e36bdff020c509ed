"""The chaos soak's short form: two minutes of load with every fault at least once, and the books balance.

bench.soak starts a private stack of its own (PostgreSQL cluster, Redis, SMTP
sink, two Daphnes, two workers, beat), so this test shares nothing with the
others; it checks the soak's verdict: exit code 0 and the accounting table.
`make soak` runs the long form (docs/benchmarks.md, "Soak").
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from bench.soak_chaos import FAULTS
from core import stack

pytestmark = [pytest.mark.integration, pytest.mark.soak]

SOAK_COMMAND = ("-m", "bench.soak", "--minutes", "2", "--seed", "7", "--fault-every", "8", "--users", "20")
# Two minutes of load, up to 180 s of settling and 120 s for the final reconnect, plus start-up: within this.
SOAK_LIMIT = 540


@pytest.mark.timeout(SOAK_LIMIT + 60)
def test_a_two_minute_soak_loses_nothing_runs_nothing_twice_and_recovers_from_every_fault() -> None:
    soak = subprocess.Popen(
        stack.python_command(*SOAK_COMMAND), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = soak.communicate(timeout=SOAK_LIMIT)
    finally:
        if soak.poll() is None:
            # SIGTERM, never SIGKILL: the soak then stops its processes and removes its directory itself.
            soak.send_signal(signal.SIGTERM)
            out, err = soak.communicate(timeout=60)
    sys.stderr.write(err[-5000:])  # shown by pytest on failure: the soak's progress and what it found
    assert "| jobs stuck (queued or running) after the settle period" in out, out
    assert soak.returncode == 0, out
    faults = next(line for line in out.splitlines() if "| faults (name: count)" in line)
    assert all(f"{name}: " in faults for name in FAULTS), faults
