"""Benchmark 3: fan-out, one worker's events to 200 sockets of 10 users.

    .venv/bin/python -m bench.fanout [--layers pubsub,core] [--rate 10000] [--seconds 3]

A private Redis and SQLite database; for each channel layer (CHANNEL_LAYER=pubsub,
then core, each with its own Daphne process): 10 users with 20 token sockets each
(RATE_LIMIT_CONNECTIONS_PER_USER, left at its default), opened by 4 client
processes (asyncio + websockets, 50 sockets each). A separate "worker" process
publishes job.progress frames to the users' groups (transport.groups.user_group),
round robin, paced evenly: R deliveries per second offered means R / 20 group
events per second, each delivered to the 20 sockets of one user.

Each frame carries `sent_ns`, the wall-clock time at which the event was due by
the pace (not when the publish call happened: a publisher that falls behind
shows its backlog as latency too). The clients take time.time_ns() as each frame
arrives; latency = receive - due (one machine, one clock). The worker stops a
step at twice its length if it cannot keep the pace. After a step the clients
wait until no frame has arrived for 0.5 s (at most 15 s) before they count;
frames later than that count as not delivered. 20 warm-up frames before each
step, and a 1 s step at R / 10 on each fresh Daphne, are not counted.

* baseline: `async_to_sync(layer.group_send)` per event, as the Channels docs show;
* ours: `transport.publisher.publisher.send(group, text)`.

A step "keeps up" when at least 98 % of the offered deliveries arrived and p99
<= 50 ms. Per layer, in this order:
1. the search, ours: offered rates --rate / 1.5**4, then x1.5 each step
   (--step-seconds each) until one does not keep up (at most --steps steps;
   upwards, so every step follows one that kept up and inherits no backlog);
2. the same search for the baseline, at most --baseline-steps steps;
3. baseline, then ours, at --rate for --seconds: the issue's figure.
Daphne's CPU use during the --rate steps is shown (one Daphne process carries
all 200 sockets).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.harness import (
    Row,
    Stack,
    Talker,
    child_lines,
    child_say,
    cpu_seconds,
    make_user,
    ms,
    open_sockets,
    parser,
    percentile,
    private_stack,
    report,
)
from transport.groups import user_group

USERS = 10
PER_USER = 20  # RATE_LIMIT_CONNECTIONS_PER_USER's default
CLIENT_PROCESSES = 4
KEEP_UP_DELIVERED = 0.98
KEEP_UP_P99 = 0.050  # seconds
STEP_FACTOR = 1.5
QUIET = 0.5  # seconds without a frame: the step has drained
DRAIN_LIMIT = 15.0  # seconds a client waits for the stragglers of a step
SEARCH_BELOW = 4  # the search starts at rate / 1.5**4


# --- a client process: holds sockets, records latencies per step --------------------------


def client() -> None:
    lines = child_lines()
    child_say({"up": True})
    order = next(lines)
    asyncio.run(receive_all(order["ws_url"], order["tokens"]))


async def receive_all(ws_url: str, tokens: list[str]) -> None:
    sockets = [s for s in await open_sockets(ws_url, tokens, in_flight=10) if s is not None]
    child_say({"opened": len(sockets), "failed": len(tokens) - len(sockets)})
    latencies: defaultdict[int, list[int]] = defaultdict(list)  # step -> microseconds
    last_frame = [time.monotonic()]

    async def listen(socket: Any) -> None:
        async for text in socket:
            received = time.time_ns()
            frame = json.loads(text)
            if frame.get("type") == "job.progress" and "step" in frame:
                latencies[frame["step"]].append((received - frame["sent_ns"]) // 1000)
                last_frame[0] = time.monotonic()

    listeners = [asyncio.create_task(listen(socket)) for socket in sockets]
    while line := await asyncio.to_thread(sys.stdin.readline):
        step = json.loads(line)["report"]
        for _ in range(round(DRAIN_LIMIT / 0.05)):
            if time.monotonic() - last_frame[0] >= QUIET:
                break
            await asyncio.sleep(0.05)
        child_say({"step": step, "latencies_us": latencies.pop(step, [])})
        latencies.clear()  # warm-up frames and stragglers of earlier steps
    for listener in listeners:
        listener.cancel()


# --- the worker process: publishes paced frames ---------------------------------------------


def worker() -> None:
    import django

    django.setup()
    # After setup: the publisher imports models.
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from transport.publisher import FRAME_TYPE, publisher

    naive_send = async_to_sync(get_channel_layer().group_send)

    def publish(mode: str, group: str, text: str) -> None:
        if mode == "naive":
            naive_send(group, {"type": FRAME_TYPE, "text": text})
        else:
            publisher.send(group, text)

    child_say({"up": True})
    for order in child_lines():
        child_say(pace(publish, order, publisher.flush))


def frame(step: int, seq: int, job: int, sent_ns: int) -> str:
    progress = {"current": seq, "total": None, "percent": None, "stage": "bench", "message": ""}
    body = {"type": "job.progress", "job_id": f"fanout-{job}", "seq": seq, "progress": progress}
    return json.dumps({**body, "step": step, "sent_ns": sent_ns})


def pace(publish: Callable[[str, str, str], None], order: dict[str, Any], flush: Callable[..., bool]) -> dict[str, Any]:
    """Publish order["events"] events evenly over order["seconds"], round robin over the groups."""
    mode, step, groups = order["mode"], order["step"], order["groups"]
    for i in range(2 * len(groups)):  # warm-up: connections and first-use costs, not counted
        publish(mode, groups[i % len(groups)], frame(-1, i, i, time.time_ns()))
    flush(timeout=10)
    time.sleep(0.3)
    events, seconds = order["events"], order["seconds"]
    interval = seconds / events
    sent = [0] * len(groups)
    start, start_ns = time.perf_counter(), time.time_ns()
    for i in range(events):
        due = start + i * interval
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - start > 2 * seconds:
            break  # cannot keep the pace: stop, what was not sent counts as not delivered
        publish(mode, groups[i % len(groups)], frame(step, i, i % len(groups), start_ns + int(i * interval * 1e9)))
        sent[i % len(groups)] += 1
    publishing = time.perf_counter() - start
    flush(timeout=30)
    return {"sent": sent, "publishing": publishing}


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class Options:
    layers: list[str]
    rate: float  # offered deliveries per second, the figure
    seconds: float  # length of the steps at `rate`
    step_seconds: float  # length of each search step
    steps: int  # most search steps, ours
    baseline_steps: int  # most search steps, the baseline


@dataclass
class Step:
    mode: str
    rate: float  # offered deliveries per second
    seconds: float
    sent_events: int = 0
    publishing: float = 0.0  # seconds the worker took to publish them
    delivered: list[float] = field(default_factory=list)  # latencies, seconds
    daphne_cpu: float = 0.0  # share of one core during the step

    @property
    def offered(self) -> int:
        return round(self.rate * self.seconds)

    @property
    def delivered_share(self) -> float:
        return len(self.delivered) / self.offered

    @property
    def p50(self) -> float:
        return percentile(self.delivered, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.delivered, 0.99)

    @property
    def worst(self) -> float:
        return max(self.delivered, default=math.nan)

    @property
    def kept_up(self) -> bool:
        return self.delivered_share >= KEEP_UP_DELIVERED and self.p99 <= KEEP_UP_P99


@dataclass
class Fleet:
    """One Daphne's clients and worker, for one channel layer."""

    clients: list[Talker]
    worker: Talker
    groups: list[str]
    opened: int  # sockets
    failed: int
    daphne_pid: int

    def run(self, mode: str, rate: float, seconds: float, step_id: int) -> Step:
        step = Step(mode, rate, seconds)
        events = round(rate * seconds / PER_USER)
        cpu, wall = cpu_seconds(self.daphne_pid), time.monotonic()
        order = {"mode": mode, "step": step_id, "groups": self.groups, "events": events, "seconds": seconds}
        self.worker.send(order)
        published = self.worker.receive(timeout=2 * seconds + 60)
        for talker in self.clients:
            talker.send({"report": step_id})
        for talker in self.clients:
            step.delivered += [us / 1e6 for us in talker.receive(timeout=DRAIN_LIMIT + 30)["latencies_us"]]
        step.daphne_cpu = (cpu_seconds(self.daphne_pid) - cpu) / (time.monotonic() - wall)
        step.sent_events, step.publishing = sum(published["sent"]), published["publishing"]
        return step


def start_fleet(bench_stack: Stack, layer: str) -> Fleet:
    users = [make_user(f"fanout-{layer}-{i}") for i in range(USERS)]
    env = {"CHANNEL_LAYER": layer}
    ws_url = bench_stack.start_daphne(env=env)
    assert bench_stack.daphne is not None
    worker = bench_stack.talker(f"worker-{layer}", "-m", "bench.fanout", "--worker", env=env)
    clients = [
        bench_stack.talker(f"client-{layer}-{i}", "-m", "bench.fanout", "--client") for i in range(CLIENT_PROCESSES)
    ]
    for talker in [worker, *clients]:
        talker.receive(timeout=60)  # up
    sockets = USERS * PER_USER
    share = sockets // CLIENT_PROCESSES
    for i, talker in enumerate(clients):
        owners = range(i * share, (i + 1) * share)
        talker.send({"ws_url": ws_url, "tokens": [users[s // PER_USER][1] for s in owners]})
    opened = [talker.receive(timeout=120) for talker in clients]
    groups = [user_group(user.pk) for user, _ in users]
    return Fleet(
        clients,
        worker,
        groups,
        sum(o["opened"] for o in opened),
        sum(o["failed"] for o in opened),
        bench_stack.daphne.pid,
    )


def search(fleet: Fleet, mode: str, start: float, steps: int, seconds: float, step_ids: Iterator[int]) -> list[Step]:
    """Offered rates start, start x 1.5, ... until one does not keep up; at most `steps` of them.

    Upwards, so every step follows one that kept up and no backlog spills into it.
    """
    tried: list[Step] = []
    rate = start
    for _ in range(steps):
        step = fleet.run(mode, rate, seconds, next(step_ids))
        tried.append(step)
        if not step.kept_up:
            break
        rate *= STEP_FACTOR
    return tried


def highest_kept(tried: list[Step]) -> str:
    kept = [s.rate for s in tried if s.kept_up]
    if not kept:
        return f"< {min(s.rate for s in tried):,.0f} /s"
    best = max(kept)
    above = [s.rate for s in tried if s.rate > best]
    return f"{best:,.0f} /s" + (f" (not {min(above):,.0f})" if above else " (highest tried)")


def run_layer(bench_stack: Stack, layer: str, options: Options) -> list[Row]:
    """The search first (upwards from rate / 1.5**4), then the step at --rate if the search did not reach it."""
    fleet = start_fleet(bench_stack, layer)
    step_ids = iter(range(1_000_000))
    start = options.rate / STEP_FACTOR**SEARCH_BELOW
    try:
        fleet.run("ours", options.rate / 10, 1.0, next(step_ids))  # warm-up: a fresh Daphne's first frames are slow
        ours_tried = search(fleet, "ours", start, options.steps, options.step_seconds, step_ids)
        naive_tried = search(fleet, "naive", start, options.baseline_steps, options.step_seconds, step_ids)
        naive = fleet.run("naive", options.rate, options.seconds, next(step_ids))
        ours = fleet.run("ours", options.rate, options.seconds, next(step_ids))
    finally:
        for talker in [*fleet.clients, fleet.worker]:
            talker.close(timeout=10)
            bench_stack.stop(talker.process)
        bench_stack.stop_daphne()
    name = f"3 fan-out, {USERS} users x {PER_USER} sockets, {layer} layer"
    opened = Row(name, "sockets opened / failed", "", f"{fleet.opened} / {fleet.failed}", f"{USERS * PER_USER} / 0")
    opened.met = fleet.failed == 0
    return [opened, *rows(name, naive, ours, naive_tried, ours_tried)]


def rows(name: str, naive: Step, ours: Step, naive_tried: list[Step], ours_tried: list[Step]) -> list[Row]:
    def delivered(step: Step) -> str:
        return f"{step.delivered_share:.1%} of {step.offered:,}"

    def sent_rate(step: Step) -> str:
        return f"{step.sent_events / step.publishing * PER_USER:,.0f} /s" if step.publishing else "n/a"

    def tried(steps: list[Step]) -> str:
        return ", ".join(f"{s.rate / 1000:.1f}k {s.p99 * 1000:.0f}{'' if s.kept_up else '!'}" for s in steps) or "-"

    rate = f"{ours.rate:,.0f}/s offered"
    return [
        Row(name, f"{rate}: delivered", delivered(naive), delivered(ours), ">= 98%", ours.delivered_share >= 0.98),
        Row(name, f"{rate}: publisher's pace (deliveries/s)", sent_rate(naive), sent_rate(ours)),
        Row(name, f"{rate}: p50", ms(naive.p50), ms(ours.p50)),
        Row(name, f"{rate}: p99", ms(naive.p99), ms(ours.p99), "<= 50 ms", ours.p99 <= KEEP_UP_P99),
        Row(
            name, f"{rate}: max", ms(max(naive.delivered, default=math.nan)), ms(max(ours.delivered, default=math.nan))
        ),
        Row(name, f"{rate}: kept up", _yes(naive.kept_up), _yes(ours.kept_up), "yes", ours.kept_up),
        Row(name, f"{rate}: Daphne CPU (one core = 100%)", f"{naive.daphne_cpu:.0%}", f"{ours.daphne_cpu:.0%}"),
        Row(
            name,
            "highest offered rate kept up (x1.5 steps)",
            highest_kept([*naive_tried, naive]) if naive_tried else "not searched",
            highest_kept([*ours_tried, ours]),
        ),
        Row(name, "search: rate p99 ms (!: did not keep up)", tried(naive_tried), tried(ours_tried)),
    ]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def run(options: Options) -> list[Row]:
    result: list[Row] = []
    with private_stack() as bench_stack:
        for layer in options.layers:
            result += run_layer(bench_stack, layer, options)
    return result


def main() -> None:
    if "--client" in sys.argv:
        client()
        return
    if "--worker" in sys.argv:
        worker()
        return
    args_parser = parser(__doc__)
    args_parser.add_argument("--layers", default="pubsub,core", help="channel layers, in order (CHANNEL_LAYER)")
    args_parser.add_argument("--rate", type=float, default=10_000, help="offered deliveries per second")
    args_parser.add_argument("--seconds", type=float, default=3.0, help="length of the steps at --rate")
    args_parser.add_argument("--step-seconds", type=float, default=2.0, help="length of each search step")
    args_parser.add_argument("--steps", type=int, default=7, help="most search steps for ours")
    args_parser.add_argument("--baseline-steps", type=int, default=2, help="most search steps for the baseline")
    args = args_parser.parse_args()
    layers = args.layers.split(",")
    if set(layers) - {"pubsub", "core"}:
        args_parser.error("--layers: pubsub and/or core")
    options = Options(layers, args.rate, args.seconds, args.step_seconds, args.steps, args.baseline_steps)
    report(run(options), args.json)


if __name__ == "__main__":
    main()
