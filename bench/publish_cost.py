"""Benchmark 1: what publishing one progress event costs a worker.

    .venv/bin/python -m bench.publish_cost [--events 2000]

From a plain thread, as a Celery task runs, N pre-serialised job.progress frames
are published to a group with one member on a private Redis channel layer (the
service's settings, CHANNEL_LAYER: on `pubsub` the member is a plain Redis
subscriber to the group's channel, since that layer's channels live in one event
loop; on `core` a channel added to the group):

* baseline: `async_to_sync(layer.group_send)(group, message)` per event, as the
  Channels docs show;
* ours: `transport.publisher.publisher.send(group, text)`, then
  `publisher.flush()` to wait until every event was actually sent.

Reported per event: the caller's wall time (what the job waits), the process
CPU time (every thread, so ours includes its publisher loop doing the Redis
work), and for ours the end-to-end time until flush() returns. Both runs warm
up first (the publisher's thread and connections exist before timing starts).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import Row, parser, private_stack, report, us

GROUP = "bench.publish"
WARMUP = 50


@dataclass
class Timing:
    wall: float  # seconds, the caller's
    cpu: float  # seconds, the whole process
    end_to_end: float  # seconds until everything was sent


def frame(i: int, total: int) -> str:
    progress = {"current": i, "total": total, "percent": None, "stage": "bench", "message": ""}
    return json.dumps({"type": "job.progress", "job_id": "bench", "seq": i, "progress": progress})


def in_thread(work: Callable[[], Timing]) -> Timing:
    """Run `work` in a fresh plain thread (no event loop), like a Celery task."""
    result: list[Timing] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def run(events: int) -> list[Row]:
    # A large capacity keeps the one member channel from dropping messages mid-run.
    with private_stack({"CHANNELS_CAPACITY": str(10 * (events + WARMUP))}) as bench_stack:
        import redis
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer
        from django.conf import settings

        from transport.publisher import FRAME_TYPE, publisher

        layer = get_channel_layer()
        if settings.CHANNEL_LAYER == "pubsub":
            member = redis.Redis.from_url(bench_stack.redis_url).pubsub()
            member.subscribe(f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}__group__{GROUP}")
        else:
            channel = async_to_sync(layer.new_channel)()
            async_to_sync(layer.group_add)(GROUP, channel)
        texts = [frame(i, events) for i in range(events)]

        def naive() -> Timing:
            send = async_to_sync(layer.group_send)
            for i in range(WARMUP):
                send(GROUP, {"type": FRAME_TYPE, "text": texts[i]})
            cpu, wall = time.process_time(), time.perf_counter()
            for text in texts:
                send(GROUP, {"type": FRAME_TYPE, "text": text})
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return Timing(wall, cpu, wall)

        def ours() -> Timing:
            for i in range(WARMUP):
                publisher.send(GROUP, texts[i])
            publisher.flush(timeout=30)
            cpu, wall = time.process_time(), time.perf_counter()
            for text in texts:
                publisher.send(GROUP, text)
            caller = time.perf_counter() - wall
            flushed = publisher.flush(timeout=60)
            end_to_end, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert flushed, "the publisher did not send everything within 60 s"
            return Timing(caller, cpu, end_to_end)

        sent_before = publisher.sent
        base = in_thread(naive)
        mine = in_thread(ours)
        delivered = publisher.sent - sent_before - WARMUP
        dropped = publisher.dropped

    ratio = mine.wall / base.wall
    name = f"1 publish cost ({events} events)"
    return [
        Row(
            name,
            "caller wall / event",
            us(base.wall / events),
            us(mine.wall / events),
            "ours <= 1/20 naive",
            ratio <= 1 / 20,
        ),
        Row(name, "ours / naive (caller wall)", "1", f"1/{base.wall / mine.wall:.0f}", "<= 1/20", ratio <= 1 / 20),
        Row(name, "process CPU / event", us(base.cpu / events), us(mine.cpu / events)),
        Row(name, "end to end / event (flush)", us(base.end_to_end / events), us(mine.end_to_end / events)),
        Row(
            name,
            "events sent by ours / dropped",
            "-",
            f"{delivered} / {dropped}",
            f"{events} / 0",
            delivered == events and dropped == 0,
        ),
    ]


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--events", type=int, default=2000)
    args = args_parser.parse_args()
    report(run(args.events), args.json)


if __name__ == "__main__":
    main()
