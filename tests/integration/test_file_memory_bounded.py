"""Each operation processes a 200 MB file in a fresh process whose peak memory stays far below the file's size."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from Linux's /proc"),
]

SIZE = 200 * 1000 * 1000
LIMIT = 100 * 1000 * 1000  # peak growth allowed over the process's baseline, in bytes

# Runs one operation over a file and prints the process's peak resident memory
# (VmHWM, in KiB) after imports and after the operation. Not ru_maxrss: Linux
# carries the parent's peak over fork and exec into it.
PROBE = """
import json, os, sys
from uploads.operations import OPERATIONS

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

path, name = sys.argv[1], sys.argv[2]
baseline = peak_kib()
with open(path, "rb", buffering=0) as file:
    result = OPERATIONS[name](file, os.path.getsize(path), lambda done: None)
print(json.dumps({"baseline": baseline, "peak": peak_kib(), "result": result}))
"""


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 200 MB CSV (so also UTF-8 text) with a vocabulary of some 60,000 words: a 1 MiB block repeated."""
    rng = random.Random(3)
    rows = [
        f"{rng.randrange(10**6)},{rng.uniform(-1e4, 1e4):.3f},word{rng.randrange(60_000)} and more,"
        f"{rng.choice(['true', 'false'])},2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}\n"
        for _ in range(20_000)
    ]
    block = "".join(rows).encode()
    path = tmp_path_factory.mktemp("big") / "big.csv"
    with open(path, "wb") as out:
        out.write(b"id,value,text,flag,day\n")
        for _ in range(SIZE // len(block) + 1):
            out.write(block)
    yield path
    path.unlink()


def run_probe(path: Path, operation: str) -> dict[str, object]:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), operation],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=170,
        check=True,
    )
    report: dict[str, object] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("operation", ["checksum", "csv.summary", "text.stats"])
def test_peak_memory_stays_far_below_the_file_size(big_csv: Path, operation: str) -> None:
    assert big_csv.stat().st_size >= SIZE
    report = run_probe(big_csv, operation)
    growth = (int(report["peak"]) - int(report["baseline"])) * 1024  # type: ignore[call-overload]
    print(f"{operation}: peak grew by {growth / 1e6:.1f} MB over a {big_csv.stat().st_size / 1e6:.0f} MB file")
    assert growth < LIMIT, report
    assert report["result"], "the operation ran to the end"
