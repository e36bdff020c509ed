"""Benchmark 5: progress coalescing under a job that reports a million times.

    .venv/bin/python -m bench.coalescing [--calls 1000000]

One running job row in a throw-away SQLite database, a private Redis channel
layer. The loop `for i in range(N): reporter.report(i, N)` (tasks.progress,
JOBS_PROGRESS_INTERVAL = 0.1 s) against the same loop with no reporting, in
the same run, each the best of 3 (noise only ever adds time). The reporter is made
as tasks.runner makes one for a job's run (`after_frame`: job.started has just
opened the first interval). Reported: frames
published (stored progress rows + the publisher's sent count), run time, frames
per second of run time, and the overhead.

The bare loop does nothing, so "overhead %" against it is the reporter's whole
per-call cost divided by an empty loop's cost: the issue's 5 % target is judged
on it as asked, and a second pair of rows shows the same reporter against a
loop that does a little real work per step (SHA-256 of 1 KiB, 1-2 µs, about what a
file job does per chunk), which is the case the 5 % budget is meant for.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Row, make_user, parser, private_stack, report

BLOCK = bytes(1024)


def best_of(times: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def run(calls: int) -> list[Row]:
    with private_stack():
        from django.conf import settings

        from tasks.models import Job, JobStatus
        from tasks.progress import ProgressReporter
        from transport.publisher import publisher

        user, _ = make_user()
        job = Job.objects.create(owner=user, kind="demo.countdown", request_id="bench", status=JobStatus.RUNNING)
        interval = settings.JOBS_PROGRESS_INTERVAL
        reporters: list[ProgressReporter] = []

        def bare(n: int) -> Callable[[], None]:
            def loop() -> None:
                for _ in range(n):
                    pass

            return loop

        def reporting(n: int) -> Callable[[], None]:
            def loop() -> None:
                reporter = ProgressReporter(str(job.pk), interval, after_frame=True)  # as tasks.runner makes it
                reporters.append(reporter)
                stamps.append([])
                for i in range(n):
                    reporter.report(i, n)
                reporter.close()

            return loop

        class NoOp:
            def report(self, current: int, total: int | None = None) -> None:
                pass

        def noop_calls(n: int) -> Callable[[], None]:
            def loop() -> None:
                noop = NoOp()
                for i in range(n):
                    noop.report(i, n)

            return loop

        def bare_work(n: int) -> Callable[[], None]:
            def loop() -> None:
                for _ in range(n):
                    hashlib.sha256(BLOCK).digest()

            return loop

        def reporting_work(n: int) -> Callable[[], None]:
            def loop() -> None:
                reporter = ProgressReporter(str(job.pk), interval, after_frame=True)  # as tasks.runner makes it
                reporters.append(reporter)
                stamps.append([])
                for i in range(n):
                    hashlib.sha256(BLOCK).digest()
                    reporter.report(i, n)
                reporter.close()

            return loop

        from tasks import services

        stamps: list[list[float]] = [[]]  # per run, monotonic time of every stored progress, to see the gaps
        save_progress = services.save_progress

        def recording(job_id: str, progress: dict[str, Any]) -> bool:
            stamps[-1].append(time.monotonic())
            return save_progress(job_id, progress)

        services.save_progress = recording
        publisher.send("bench.warmup", "{}")  # start the publisher's loop before timing
        publisher.flush()
        sent_before = publisher.sent
        base = best_of(3, bare(calls))
        reporters.clear()
        seq_before = Job.objects.get(pk=job.pk).seq
        started = time.perf_counter()
        reporting(calls)()
        single = time.perf_counter() - started
        publisher.flush()
        frames = reporters[0].flushes
        stored = Job.objects.get(pk=job.pk).seq - seq_before
        published = publisher.sent - sent_before
        mine = min(single, best_of(2, reporting(calls)))
        floor = best_of(3, noop_calls(calls))

        work_calls = calls
        base_work = best_of(2, bare_work(work_calls))
        reporters.clear()
        mine_work = best_of(2, reporting_work(work_calls))
        frames_work = max(r.flushes for r in reporters)  # the worse run
        gaps = [b - a for run in stamps for a, b in itertools.pairwise(run)]
        short = sum(1 for gap in gaps if gap < interval * 0.9)
        time.sleep(interval * 2)  # let a trailing flush timer (if any) find the reporter closed

    name = f"5 coalescing ({calls:,} report calls)"
    per_second = frames / single
    overhead = mine / base - 1
    work_name = f"5 coalescing + 1 KiB sha256/step ({work_calls:,})"
    work_overhead = mine_work / base_work - 1
    return [
        Row(name, "frames (flushes / stored / published)", "0", f"{frames} / {stored} / {published}", "", None),
        Row(name, "frames per second of run time", "0", f"{per_second:.1f}", "<= 10", per_second <= 10),
        Row(name, "run time", f"{base * 1000:.1f} ms", f"{mine * 1000:.1f} ms"),
        Row(name, "frames vs bound 1 + run time / interval", "-", f"{frames} vs {1 + single / interval:.1f}", "", None),
        Row(
            name,
            "cost per report call (floor: no-op method)",
            f"{(floor - base) / calls * 1e9:.0f} ns",
            f"{(mine - base) / calls * 1e9:.0f} ns",
        ),
        Row(name, "overhead vs empty loop", "0%", f"{overhead * 100:.0f}%", "<= 5%", overhead <= 0.05),
        Row(work_name, "run time", f"{base_work * 1000:.1f} ms", f"{mine_work * 1000:.1f} ms"),
        Row(
            work_name,
            "frames per second of run time",
            "0",
            f"{frames_work / mine_work:.1f}",
            "<= 10",
            frames_work / mine_work <= 10,
        ),
        Row(
            "5 coalescing (all runs)",
            "gaps between frames < 0.9 x interval",
            "-",
            f"{short} of {len(gaps)} (min {min(gaps, default=0) * 1000:.2f} ms)",
            "0",
            short == 0,
        ),
        Row(work_name, "overhead vs same loop", "0%", f"{work_overhead * 100:.1f}%", "<= 5%", work_overhead <= 0.05),
    ]


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--calls", type=int, default=1_000_000)
    args = args_parser.parse_args()
    report(run(args.calls), args.json)


if __name__ == "__main__":
    main()
