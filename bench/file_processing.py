"""Throughput of the file.process operations beside `sha256sum` on the same machine, in one run.

    .venv/bin/python -m bench.file_processing [--size-mb 500] [--repeat 3]

Generates three files of --size-mb megabytes in a temporary directory (random
bytes; a CSV of integers, floats, words, booleans and dates; prose drawn from a
Zipf vocabulary of 50,000 words), times `sha256sum` over the random file as the
baseline, then each operation over its file, and prints one table. The files
are written just before they are read, so every reader finds them in the page
cache: the figures compare CPU work, not disks. The fast readers (sha256sum,
checksum) take the best of --repeat runs; csv.summary and text.stats run once.
The temporary directory is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from uploads.operations import OPERATIONS

MB = 1_000_000
BLOCK_ROWS = 20_000


@dataclass
class Timing:
    name: str
    file: str
    megabytes: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.megabytes / self.seconds


def write(path: Path, size: int, blocks: Iterator[bytes]) -> Path:
    with open(path, "wb") as out:
        written = 0
        while written < size:
            block = next(blocks)
            out.write(block)
            written += len(block)
    return path


def random_blocks() -> Iterator[bytes]:
    while True:
        yield os.urandom(4 * 1024 * 1024)


def csv_blocks(rng: random.Random) -> Iterator[bytes]:
    """A header, then a few distinct blocks of rows in turn (generating every row would dwarf the benchmark)."""
    yield b"id,amount,label,active,day,score\n"
    blocks = [_csv_block(rng) for _ in range(4)]
    while True:
        yield from blocks


def _csv_block(rng: random.Random) -> bytes:
    rows = (
        f"{rng.randrange(10**9)},{rng.uniform(-1e5, 1e5):.2f},item {rng.randrange(50_000)},"
        f"{rng.choice(('true', 'false'))},20{rng.randrange(10, 27)}-{rng.randrange(1, 13):02d}-"
        f"{rng.randrange(1, 29):02d},{'' if rng.random() < 0.1 else rng.randrange(100)}\n"
        for _ in range(BLOCK_ROWS)
    )
    return "".join(rows).encode()


def prose_blocks(rng: random.Random) -> Iterator[bytes]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randrange(2, 11))) for _ in range(50_000)]
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    blocks = [_prose_block(rng, vocabulary, weights) for _ in range(4)]
    while True:
        yield from blocks


def _prose_block(rng: random.Random, vocabulary: list[str], weights: list[float]) -> bytes:
    words = rng.choices(vocabulary, weights, k=300_000)
    separators = rng.choices([" ", " ", " ", " ", ", ", ". ", ".\n"], k=len(words))
    return "".join(word + separator for word, separator in zip(words, separators, strict=True)).encode()


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def sha256sum(path: Path) -> str:
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True, timeout=600)
    return done.stdout.split()[0]


def operation(name: str, path: Path) -> Callable[[], dict[str, object]]:
    def run() -> dict[str, object]:
        with open(path, "rb", buffering=0) as file:
            return OPERATIONS[name](file, path.stat().st_size, lambda done: None)

    return run


def measure(directory: Path, size: int, repeat: int) -> list[Timing]:
    rng = random.Random(2026)
    data = write(directory / "random.bin", size, random_blocks())
    baseline = best_of(repeat, lambda: sha256sum(data))
    checksum = operation("checksum", data)
    assert checksum()["sha256"] == sha256sum(data), "checksum disagrees with sha256sum"
    timings = [timing("sha256sum", data, baseline), timing("checksum", data, best_of(repeat, checksum))]
    data.unlink()  # keep at most two big files on disk
    table = write(directory / "data.csv", size, csv_blocks(rng))
    timings.append(timing("csv.summary", table, best_of(1, operation("csv.summary", table))))
    prose = write(directory / "prose.txt", size, prose_blocks(rng))
    timings.append(timing("text.stats", prose, best_of(1, operation("text.stats", prose))))
    return timings


def timing(name: str, path: Path, seconds: float) -> Timing:
    return Timing(name, path.name, path.stat().st_size / MB, seconds)


def report(timings: list[Timing]) -> None:
    baseline = timings[0].rate
    print(f"{'operation':<12} {'file':<10} {'MB':>6} {'seconds':>8} {'MB/s':>7} {'vs sha256sum':>13}")
    for timing in timings:
        share = f"{timing.rate / baseline:.0%}"
        print(
            f"{timing.name:<12} {timing.file:<10} {timing.megabytes:>6.0f} {timing.seconds:>8.2f} "
            f"{timing.rate:>7.1f} {share:>13}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500, help="size of each generated file, in MB (10^6 bytes)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of sha256sum and checksum; the best counts")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: the temp dir)")
    args = parser.parse_args()
    if shutil.which("sha256sum") is None:
        sys.exit("sha256sum is not installed: it is the baseline.")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {ssl.OPENSSL_VERSION}")
    with tempfile.TemporaryDirectory(prefix="bench-files-", dir=args.dir) as directory:
        report(measure(Path(directory), args.size_mb * MB, args.repeat))


if __name__ == "__main__":
    main()
