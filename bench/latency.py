"""Benchmark 2: latency from a worker's progress report to the WebSocket client.

    .venv/bin/python -m bench.latency [--events 500] [--rate 200] [--no-concurrent]

A private Redis, SQLite database and Daphne; one client socket authenticated
with an API token (this process). A separate "worker" process publishes
job.progress frames to the user's group, each carrying `sent_ns` =
time.time_ns() taken just before the publish call, through (a) the naive
`async_to_sync(layer.group_send)` per event and (b) our publisher. The client
takes time.time_ns() as each frame arrives; latency = receive - send (one
machine, one clock). Events are paced evenly (--rate per second), so they do
not queue behind each other; 20 warm-up events per run are not counted.

Then, unless --no-concurrent: 200 jobs interleaved, 1,000 events/s in total,
to the same socket (the worker sends from one thread, as one worker process
would; the naive path cannot sustain that rate, and the achieved rate is shown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass

from bench.harness import Row, Stack, make_user, ms, parser, percentile, private_stack, report

WARMUP = 20


@dataclass
class Measured:
    latencies: list[float]  # seconds
    expected: int
    duration: float  # seconds from first to last measured send

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.duration if self.duration > 0 else 0.0


# --- the "worker" child -------------------------------------------------------------


def child(mode: str, group: str, events: int, rate: float, jobs: int) -> None:
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from transport.publisher import FRAME_TYPE, publisher

    layer = get_channel_layer()
    naive_send = async_to_sync(layer.group_send)

    def publish(i: int, warmup: bool) -> None:
        progress = {"current": i, "total": events, "percent": None, "stage": "bench", "message": ""}
        body = {"type": "job.progress", "job_id": f"job-{i % jobs}", "seq": i, "progress": progress, "warmup": warmup}
        body["sent_ns"] = time.time_ns()
        text = json.dumps(body)
        if mode == "naive":
            naive_send(group, {"type": FRAME_TYPE, "text": text})
        else:
            publisher.send(group, text)

    for i in range(WARMUP):
        publish(i, True)
        time.sleep(0.01)
    publisher.flush()
    time.sleep(0.2)
    interval = 1 / rate
    next_at = time.perf_counter()
    for i in range(events):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        publish(i, False)
        next_at += interval
    publisher.flush(timeout=30)
    print("done", flush=True)


# --- the client ---------------------------------------------------------------------


async def receive(
    ws_url: str, token: str, bench_stack: Stack, mode: str, group: str, events: int, rate: float, jobs: int
) -> Measured:
    from websockets.asyncio.client import connect

    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert hello["type"] == "hello", hello
        worker = bench_stack.child(
            "-m",
            "bench.latency",
            "--child",
            mode,
            "--group",
            group,
            "--events",
            str(events),
            "--rate",
            str(rate),
            "--jobs",
            str(jobs),
        )
        latencies: list[float] = []
        first = last = 0
        deadline = time.monotonic() + events / rate + 60
        try:
            while len(latencies) < events and time.monotonic() < deadline:
                try:
                    text = await asyncio.wait_for(socket.recv(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                received = time.time_ns()
                frame = json.loads(text)
                if frame.get("type") != "job.progress" or frame.get("warmup"):
                    continue
                sent = int(frame["sent_ns"])
                first = first or sent
                last = sent
                latencies.append((received - sent) / 1e9)
        finally:
            await asyncio.to_thread(worker.wait, 30)
            bench_stack.processes.remove(worker)
        return Measured(latencies, events, (last - first) / 1e9)


def rows(name: str, base: Measured, mine: Measured, p50: float | None, p99: float | None) -> list[Row]:
    def met(value: float, target: float | None) -> bool | None:
        return None if target is None else value <= target

    b50, b99 = percentile(base.latencies, 0.5), percentile(base.latencies, 0.99)
    o50, o99 = percentile(mine.latencies, 0.5), percentile(mine.latencies, 0.99)
    return [
        Row(name, "p50", ms(b50), ms(o50), f"<= {p50 * 1000:g} ms" if p50 else "", met(o50, p50)),
        Row(name, "p99", ms(b99), ms(o99), f"<= {p99 * 1000:g} ms" if p99 else "", met(o99, p99)),
        Row(name, "max", ms(max(base.latencies, default=float("nan"))), ms(max(mine.latencies, default=float("nan")))),
        Row(
            name,
            "received / sent",
            f"{len(base.latencies)} / {base.expected}",
            f"{len(mine.latencies)} / {mine.expected}",
            "all",
            len(mine.latencies) == mine.expected,
        ),
        Row(name, "achieved events/s", f"{base.rate:.0f}", f"{mine.rate:.0f}"),
    ]


def run(events: int, rate: float, concurrent: bool) -> list[Row]:
    with private_stack() as bench_stack:
        from transport.groups import user_group

        user, token = make_user()
        group = user_group(user.pk)
        ws_url = bench_stack.start_daphne()

        def measure(mode: str, count: int, per_second: float, jobs: int) -> Measured:
            return asyncio.run(receive(ws_url, token, bench_stack, mode, group, count, per_second, jobs))

        result = rows(
            f"2 latency, 1 job, {rate:g} ev/s",
            measure("naive", events, rate, 1),
            measure("ours", events, rate, 1),
            0.001,
            0.005,
        )
        if concurrent:
            count = 3000
            result += rows(
                "2 latency, 200 jobs, 1000 ev/s",
                measure("naive", count, 1000, 200),
                measure("ours", count, 1000, 200),
                None,
                None,
            )
    return result


def main() -> None:
    if "--child" in sys.argv:
        child_parser = argparse.ArgumentParser()
        child_parser.add_argument("--child", choices=["naive", "ours"], required=True)
        child_parser.add_argument("--group", required=True)
        child_parser.add_argument("--events", type=int, required=True)
        child_parser.add_argument("--rate", type=float, required=True)
        child_parser.add_argument("--jobs", type=int, default=1)
        args = child_parser.parse_args()
        child(args.child, args.group, args.events, args.rate, args.jobs)
        return
    args_parser = parser(__doc__)
    args_parser.add_argument("--events", type=int, default=500)
    args_parser.add_argument("--rate", type=float, default=200)
    args_parser.add_argument("--no-concurrent", action="store_true")
    args = args_parser.parse_args()
    report(run(args.events, args.rate, not args.no_concurrent), args.json)


if __name__ == "__main__":
    main()
