"""The benchmark suite: every benchmark, one table, baseline beside ours.

    .venv/bin/python -m bench [--only publish_cost,latency] [--file-processing]

Each benchmark runs in its own subprocess (it sets up Django against its own
private Redis, SQLite file and Daphne, and removes them when it ends; history uses
a database of its own on the local PostgreSQL, kept between runs) and is
killed after its time limit; a benchmark that fails or times out shows as one
row saying so, and the others still run. Only 127.0.0.1 is used.
file_processing (~20 s at 100 MB) is left out unless --file-processing.
The whole run takes about 15-17 minutes here, 6 of them reconnect_storm (history: +8 min the first
time, to build its table).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import Row, format_table, load_rows, noise_note
from core import stack

# module, time limit in seconds (the defaults finish well within them here), in the order
BENCHMARKS = {
    "publish_cost": 90,
    "latency": 120,
    "fanout": 240,  # ~85 s: two channel layers, each with its own Daphne
    "idle_connections": 720,  # ~280 s: 10,000 sockets on a bare app, then on the service
    "coalescing": 90,
    "throughput": 150,  # ~85 s: ours, the minimal pipeline, the floor
    # On the local PostgreSQL: ~1 min once the table is built; building 10,000,000 jobs the first time ~15 min
    "history": 1800,
    "batches": 600,  # ~250 s (~330 s on PostgreSQL): the baseline's 10,000 single submits take most of it
    # ~360 s: 5,000 sockets on each server, and up to 180 s after each restart
    "reconnect_storm": 720,
    "prepared_queries": 120,  # ~20 s: the hot reads and writes, prepared and as the ORM builds them
}


def run_one(name: str, limit: float, directory: Path) -> list[Row]:
    out = directory / f"{name}.json"
    command = stack.python_command("-m", f"bench.{name}", "--json", str(out))
    started = time.monotonic()
    print(f"-- {name} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        code = process.wait(limit)
    except subprocess.TimeoutExpired:
        stack.stop([process], timeout=10)  # SIGTERM lets it stop its own Redis and Daphne
        return [Row(name, "timed out", "-", f"> {limit:.0f} s", "", False)]
    print(f"   {time.monotonic() - started:.1f} s, exit {code}", file=sys.stderr, flush=True)
    if code != 0 or not out.exists():
        return [Row(name, "failed", "-", f"exit code {code}", "", False)]
    return load_rows(out)


def file_processing_rows() -> list[Row]:
    command = stack.python_command("-m", "bench.file_processing", "--size-mb", "100", "--repeat", "1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    print(result.stdout, file=sys.stderr)
    return [Row("file_processing (100 MB)", "see the table printed above", "sha256sum", "-", "", None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated benchmark names: " + ", ".join(BENCHMARKS))
    parser.add_argument("--file-processing", action="store_true", help="also run bench.file_processing at 100 MB")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    rows: list[Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobs-bench-results-") as directory:
        for name in names:
            rows += run_one(name, BENCHMARKS[name], Path(directory))
    if args.file_processing:
        rows += file_processing_rows()
    print(format_table(rows))
    print(noise_note())
    print(f"Whole suite: {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    main()
