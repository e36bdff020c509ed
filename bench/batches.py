"""Benchmark 8: batches. A 10,000-job batch.submit over one socket, and what a batch adds to each child's transition.

    .venv/bin/python -m bench.batches [--children 10000] [--repeat 3] [--singles 10000] [--transitions 1000]

A private Redis and database (bench.harness), one Daphne (core.stack's command
line), no Celery worker: the tasks the service sends wait in the private broker,
and nothing runs them. RATE_LIMIT_SUBMITS_PER_MINUTE, RATE_LIMIT_MESSAGES_PER_SECOND
and JOBS_MAX_ACTIVE_PER_USER are raised for this private stack only, so the
baseline's 10,000 submits are not refused.

1. Submit. A parallel batch of `demo.countdown` children (`{"steps": 10}`), sent
   as the protocol's batch in parts (docs/protocol.md): frames of at most
   64 KiB, each with its `offset`, all but the last with `continues`, and each
   continuing part sent only once its `batch.part` answer arrived. Timed on the
   client from the first part sent to `job.accepted` (the batch, its children
   and their first events are inserted in one transaction before it), --repeat
   times on one socket after a warm-up batch of 2,000; the issue's target is
   2 s. Then it
   checks that the children are in the database and their tasks in the broker,
   and submits one more batch in this process (tasks.services.submit_batch) with
   the steps of tasks.batches timed, to show where the time goes.
   Baseline, in the same run, on another socket of another user: --singles
   `job.submit` of the same job, sent back to back without waiting (a reader
   takes the answers meanwhile), timed from the first sent to the last
   `job.accepted`. After each batch's `job.accepted` a `ping` is sent on the same
   socket and its `pong` timed (is the socket free again?). For both, also the
   time until the broker holds every job's task (polled every 20 ms; whether the
   service hands them out before its answer or after it), and Daphne's CPU time
   until then; the next run starts only then.
2. Aggregate cost. In this process, against the same database: a batch of
   --transitions children and as many standalone jobs, each taken through
   `tasks.services.start` and `succeed` as a worker's task would, alternating
   blocks of 100 jobs of each. Reported per transition (wall clock), and the
   time spent inside the batch's receiver (tasks.batches.child_moved: the counter
   UPDATE, which returns the counters, and what follows from them), timed by
   wrapping it. A standalone job's succeed also records the owner's
   notification, which a child does not (its batch does, once): so the start
   transitions compare the counter update alone (the batch's coalesced progress
   saves, at most 2 a second, land on whichever block runs). At the end the batch's counters
   must equal a recount of its children, and the batch must have succeeded.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.harness import Row, Stack, cpu_seconds, make_user, ms, parser, percentile, private_stack, report, us

KIND = "demo.countdown"
PARAMS = {"steps": 10}
TARGET = 2.0  # seconds from the first part sent to job.accepted, for 10,000 children (the issue's)
WARMUP_CHILDREN = 2_000
BLOCK = 100  # jobs of one side timed in a row before the other side's
LIMITS = {
    "RATE_LIMIT_SUBMITS_PER_MINUTE": "1000000",
    "RATE_LIMIT_MESSAGES_PER_SECOND": "1000000",
    "JOBS_MAX_ACTIVE_PER_USER": "1000000",
}


# --- 1. submit over the socket ---------------------------------------------------------------------


def batch_frames(request_id: str, children: int, frame_limit: int) -> list[str]:
    """The batch.submit frames of a parallel batch: as many jobs in each as fit in `frame_limit` bytes."""
    compact = (",", ":")
    job = {"kind": KIND, "params": PARAMS}
    size = len(json.dumps(job, separators=compact)) + 1  # and its comma
    frames: list[str] = []
    offset = 0
    while offset < children:
        head = {"type": "batch.submit", "request_id": request_id, "title": "bench", "mode": "parallel"}
        envelope = len(json.dumps({**head, "offset": offset, "continues": True, "jobs": []}, separators=compact))
        count = min(children - offset, (frame_limit - envelope + 1) // size)
        message = {**head, "offset": offset, "continues": offset + count < children, "jobs": [job] * count}
        frames.append(json.dumps(message, separators=compact))
        assert len(frames[-1].encode()) <= frame_limit, len(frames[-1])
        offset += count
    return frames


@dataclass
class Submitted:
    seconds: float  # first frame sent -> the last answer awaited
    handed_out: float  # first frame sent -> every job's task in the broker
    frames: int
    sent_bytes: int
    daphne_cpu: float  # seconds, first frame sent -> every task in the broker
    parts_seconds: float = 0.0  # the batch: first part sent -> the last batch.part answer
    ping_seconds: float = 0.0  # the batch: job.accepted -> the pong to a ping sent then
    job_id: str = ""


def wait_for_tasks(total: int, timeout: float = 300) -> float:
    """Poll the broker until `total` tasks wait there; time.perf_counter() then.

    The broker starts empty and nothing takes tasks out, so `total` counts every job
    submitted so far: this tells when the service has handed all of them to Celery,
    whether that happens before job.accepted or after it.
    """
    from tasks.broker import queue_lengths

    deadline = time.monotonic() + timeout
    while sum(n or 0 for n in queue_lengths().values()) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker did not get {total} tasks within {timeout:.0f} s")
        time.sleep(0.02)
    return time.perf_counter()


async def open_socket(ws_url: str, token: str) -> ClientConnection:
    socket = await connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=30,
        ping_interval=None,
        max_queue=None,
        max_size=None,
    )
    hello = json.loads(await asyncio.wait_for(socket.recv(), 30))
    assert hello["type"] == "hello", hello
    return socket


async def answer(socket: ClientConnection, request_id: str, expected: str) -> dict[str, Any]:
    """The server's answer to `request_id` (events of other jobs are skipped); an error stops the benchmark."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 120))
        if message.get("request_id") != request_id:
            continue
        if message["type"] != expected:
            raise RuntimeError(f"expected {expected}, got {message}")
        return message


async def submit_batch(socket: ClientConnection, frames: list[str], daphne_pid: int, tasks: int) -> Submitted:
    """Send the batch's frames, each part after the answer to the one before; then wait for `tasks` in the broker."""
    request_id = json.loads(frames[0])["request_id"]
    offsets = [json.loads(text)["offset"] for text in frames]
    cpu = cpu_seconds(daphne_pid)
    started = time.perf_counter()
    for text, following in zip(frames[:-1], offsets[1:], strict=True):
        await socket.send(text)
        part = await answer(socket, request_id, "batch.part")
        assert part["received"] == following, (part, following)
    parts = time.perf_counter()
    await socket.send(frames[-1])
    accepted = await answer(socket, request_id, "job.accepted")
    done = time.perf_counter()
    await socket.send('{"type":"ping"}')
    while json.loads(await asyncio.wait_for(socket.recv(), 120))["type"] != "pong":
        pass
    pong = time.perf_counter()
    handed_out = await asyncio.to_thread(wait_for_tasks, tasks)
    used = cpu_seconds(daphne_pid) - cpu
    size = sum(len(text.encode()) for text in frames)
    job_id = accepted["job"]["id"]
    return Submitted(
        done - started, handed_out - started, len(frames), size, used, parts - started, pong - done, job_id
    )


async def submit_singles(socket: ClientConnection, count: int, daphne_pid: int, tasks: int) -> Submitted:
    """`count` job.submit sent back to back while the answers are read; timed to the last job.accepted."""
    texts = [
        json.dumps({"type": "job.submit", "request_id": f"single-{i}", "kind": KIND, "params": PARAMS})
        for i in range(count)
    ]

    async def send_all() -> None:
        for text in texts:
            await socket.send(text)

    cpu = cpu_seconds(daphne_pid)
    started = time.perf_counter()
    sender = asyncio.create_task(send_all())
    accepted = 0
    while accepted < count:
        message = json.loads(await asyncio.wait_for(socket.recv(), 120))
        if message["type"] == "error":
            sender.cancel()
            raise RuntimeError(f"a single submit was refused: {message}")
        accepted += message["type"] == "job.accepted"
    await sender
    done = time.perf_counter()
    handed_out = await asyncio.to_thread(wait_for_tasks, tasks)
    used = cpu_seconds(daphne_pid) - cpu
    size = sum(len(text.encode()) for text in texts)
    return Submitted(done - started, handed_out - started, count, size, used)


async def submit_runs(
    ws_url: str, daphne_pid: int, tokens: tuple[str, str], children: int, repeat: int, singles: int
) -> list[Submitted]:
    """The warm-up batch, `repeat` timed batches on one socket, then the singles on another user's socket."""
    from gateway.protocol import MAX_FRAME_BYTES

    socket = await open_socket(ws_url, tokens[0])
    async with socket:
        frames = batch_frames("warm-up", WARMUP_CHILDREN, MAX_FRAME_BYTES)
        await submit_batch(socket, frames, daphne_pid, WARMUP_CHILDREN)
        runs = []
        for n in range(repeat):
            frames = batch_frames(f"batch-{n}", children, MAX_FRAME_BYTES)
            runs.append(await submit_batch(socket, frames, daphne_pid, WARMUP_CHILDREN + (n + 1) * children))
    socket = await open_socket(ws_url, tokens[1])
    async with socket:
        runs.append(await submit_singles(socket, singles, daphne_pid, WARMUP_CHILDREN + repeat * children + singles))
    return runs


def check_submitted(batch_ids: list[str], children: int, singles: int) -> int:
    """That each batch holds its children, queued, and that the broker got one task per job (the warm-up's
    included, in a broker that started empty): how many tasks wait there."""
    from tasks.broker import queue_lengths
    from tasks.models import Job, JobStatus

    for batch_id in batch_ids:
        made = Job.objects.filter(parent_id=uuid.UUID(batch_id), status=JobStatus.QUEUED).count()
        assert made == children, f"batch {batch_id}: {made} queued children, not {children}"
    assert Job.objects.filter(parent=None, request_id__startswith="single-").count() == singles
    waiting = sum(n or 0 for n in queue_lengths().values())
    expected = WARMUP_CHILDREN + children * len(batch_ids) + singles
    assert waiting == expected, f"{waiting} tasks in the broker, not {expected}"
    return waiting


def submit_rows(children: int, batches: list[Submitted], singles: Submitted, tasks_waiting: int) -> list[Row]:
    name = f"8 batch submit, {children:,} children"
    times = [run.seconds for run in batches]

    def median(field: str) -> float:
        return float(statistics.median(getattr(run, field) for run in batches))

    return [
        Row(
            name,
            f"first frame sent -> job.accepted, median of {len(times)} (baseline: {singles.frames:,} job.submit)",
            f"{singles.seconds:.2f} s",
            f"{median('seconds'):.2f} s",
        ),
        Row(
            name,
            "slowest run (each run)",
            "-",
            f"{max(times):.2f} s ({' / '.join(f'{t:.2f}' for t in times)})",
            "<= 2 s",
            max(times) <= TARGET,
        ),
        Row(name, "per job", us(singles.seconds / singles.frames), us(median("seconds") / children)),
        Row(name, "of which the parts (first part sent -> last batch.part), median", "-", ms(median("parts_seconds"))),
        Row(
            name, "job.accepted -> pong to a ping sent then on the same socket, median", "-", ms(median("ping_seconds"))
        ),
        Row(
            name,
            "first frame sent -> every job's task in the broker, median",
            f"{singles.handed_out:.2f} s",
            f"{median('handed_out'):.2f} s",
        ),
        Row(
            name,
            "frames sent (KiB)",
            f"{singles.frames:,} ({singles.sent_bytes / 1024:,.0f})",
            f"{batches[0].frames} ({batches[0].sent_bytes / 1024:,.0f}), <= 64 KiB each",
        ),
        Row(
            name,
            "Daphne CPU to the last task in the broker (batch: median)",
            f"{singles.daphne_cpu:.2f} s",
            f"{median('daphne_cpu'):.2f} s",
        ),
        Row(
            name, "tasks waiting in the broker after the runs (no worker)", "-", f"{tasks_waiting:,}", "one a job", True
        ),
    ]


def submit_benchmark(bench_stack: Stack, children: int, repeat: int, singles: int) -> list[Row]:
    tokens = (make_user("batches")[1], make_user("singles")[1])
    ws_url = bench_stack.start_daphne()
    assert bench_stack.daphne is not None
    runs = asyncio.run(submit_runs(ws_url, bench_stack.daphne.pid, tokens, children, repeat, singles))
    bench_stack.stop_daphne()
    waiting = check_submitted([run.job_id for run in runs[:-1]], children, singles)
    return submit_rows(children, runs[:-1], runs[-1], waiting) + split_row(children)


STEPS = {"validate_children": "check", "create": "insert", "send_children": "tasks to the broker"}


@contextmanager
def timed_steps(spent: dict[str, float]) -> Iterator[None]:
    """The steps of tasks.batches that a submit runs, each timed (by the name in STEPS) while this lasts."""
    from tasks import batches

    originals: dict[str, Callable[..., Any]] = {name: getattr(batches, name) for name in STEPS}

    def timing(name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                spent[STEPS[name]] = time.perf_counter() - started

        return timed

    for name, step in originals.items():
        setattr(batches, name, timing(name, step))
    try:
        yield
    finally:
        for name, step in originals.items():
            setattr(batches, name, step)


def split_row(children: int) -> list[Row]:
    """Where the submit's time goes: one more batch, submitted in this process with its steps timed."""
    from tasks import services

    owner, _ = make_user("split")
    spent: dict[str, float] = {}
    jobs = [(KIND, dict(PARAMS)) for _ in range(children)]
    started = time.perf_counter()
    with timed_steps(spent):
        services.submit_batch(owner, "split", "bench", "parallel", jobs)
    spent["the rest"] = time.perf_counter() - started - sum(spent.values())
    total = sum(spent.values())
    split = " / ".join(f"{seconds:.2f}" for seconds in spent.values())
    split += " (" + " / ".join(f"{seconds / total:.0%}" for seconds in spent.values()) + ")"
    metric = f"server side, in process (one more batch), s: {' / '.join(spent)}"
    return [Row(f"8 batch submit, {children:,} children", metric, "-", split)]


# --- 2. the aggregate's cost in each child's transition ---------------------------------------------


@dataclass
class Side:
    starts: list[float] = field(default_factory=list)  # seconds per transition
    succeeds: list[float] = field(default_factory=list)

    @property
    def both(self) -> list[float]:
        return self.starts + self.succeeds


@contextmanager
def timed_receiver(spent: dict[str, list[float]]) -> Iterator[None]:
    """tasks.batches.child_moved, timed on each call, by the child's new status (its share of the transition)."""
    from tasks import batches, events

    def timed(sender: Any, job: Any, old: str, **fields: Any) -> None:
        started = time.perf_counter()
        batches.child_moved(sender, job=job, old=old, **fields)
        spent.setdefault(str(job.status), []).append(time.perf_counter() - started)

    events.child_moved.disconnect(dispatch_uid="tasks.batches.child_moved")
    events.child_moved.connect(timed, weak=False, dispatch_uid="bench.batches.child_moved")
    try:
        yield
    finally:
        events.child_moved.disconnect(dispatch_uid="bench.batches.child_moved")
        batches.connect()


def run_jobs(jobs: list[tuple[uuid.UUID, str]], side: Side) -> None:
    """Start and succeed each job as its task would, timing each transition."""
    from tasks import services

    for job_id, task_id in jobs:
        started = time.perf_counter()
        assert services.start(str(job_id), task_id) is not None
        running = time.perf_counter()
        assert services.succeed(str(job_id), {"steps": PARAMS["steps"]}, None) is not None
        side.starts.append(running - started)
        side.succeeds.append(time.perf_counter() - running)


def make_jobs(count: int) -> tuple[uuid.UUID, list[tuple[uuid.UUID, str]], list[tuple[uuid.UUID, str]]]:
    """A parallel batch of `count` children and `count` standalone jobs, all queued: (batch, children, standalone)."""
    from tasks import services
    from tasks.models import Job

    owner, _ = make_user("transitions")
    batch, _ = services.submit_batch(
        owner, "aggregate", "bench", "parallel", [(KIND, dict(PARAMS)) for _ in range(count)]
    )
    standalone = [services.submit(owner, f"standalone-{i}", KIND, dict(PARAMS))[0].pk for i in range(count)]

    def task_ids(jobs: Any) -> list[tuple[uuid.UUID, str]]:
        return list(jobs.order_by("created_at").values_list("id", "celery_task_id"))

    children = task_ids(Job.objects.filter(parent_id=batch.pk))
    return batch.pk, children, task_ids(Job.objects.filter(pk__in=standalone))


def check_counters(batch_id: uuid.UUID, count: int) -> bool:
    """The batch's counters equal a recount of its children, all succeeded, and so did the batch."""
    from tasks import batches
    from tasks.models import COUNTED, Batch, Job, JobStatus

    counts = Batch.objects.get(pk=batch_id)
    stored = {status: getattr(counts, status) for status in COUNTED}
    assert stored == batches.recount(batch_id), (stored, batches.recount(batch_id))
    assert stored["succeeded"] == count, stored
    assert Job.objects.get(pk=batch_id).status == JobStatus.SUCCEEDED
    return True


def aggregate_benchmark(count: int) -> list[Row]:
    from tasks import batches

    batch_id, children, standalone = make_jobs(count)
    base, mine = Side(), Side()
    spent: dict[str, list[float]] = {}
    saves_before = batches.progress.sent
    started = time.perf_counter()
    with timed_receiver(spent):
        for n, first in enumerate(range(0, count, BLOCK)):
            # Alternate which side goes first, so neither always follows the other's writes.
            order = [(standalone, base), (children, mine)]
            for jobs, side in order if n % 2 == 0 else reversed(order):
                run_jobs(jobs[first : first + BLOCK], side)
    elapsed = time.perf_counter() - started
    time.sleep(1)  # a trailing batch progress save, if one is due, happens now
    saves = batches.progress.sent - saves_before
    return aggregate_rows(count, base, mine, spent, saves, elapsed, check_counters(batch_id, count))


def aggregate_rows(
    count: int, base: Side, mine: Side, spent: dict[str, list[float]], saves: int, elapsed: float, recount_equal: bool
) -> list[Row]:
    name = f"8 aggregate cost per child transition ({count:,} jobs, start + succeed)"
    mean: Callable[[list[float]], float] = statistics.fmean
    extra = mean(mine.both) - mean(base.both)
    return [
        Row(name, "per transition, mean (baseline: standalone jobs)", us(mean(base.both)), us(mean(mine.both))),
        Row(name, "per transition, p50 / p99", p50_p99(base.both), p50_p99(mine.both)),
        Row(name, "start (queued -> running), mean", us(mean(base.starts)), us(mean(mine.starts))),
        Row(
            name,
            "succeed (-> succeeded; standalone also records a notification), mean",
            us(mean(base.succeeds)),
            us(mean(mine.succeeds)),
        ),
        Row(
            name,
            "difference per transition, mean (child - standalone)",
            "-",
            f"{us(extra)} ({extra / mean(base.both):+.0%})",
        ),
        Row(
            name,
            "of which in the batch's receiver (child_moved), mean: start / succeed",
            "-",
            f"{us(mean(spent['running']))} / {us(mean(spent['succeeded']))}",
        ),
        Row(name, "batch progress saves (coalesced, 0.5 s)", "-", f"{saves} in {elapsed:.1f} s"),
        Row(name, "batch counters = recount at the end", "-", "yes" if recount_equal else "no", "yes", recount_equal),
    ]


def p50_p99(values: list[float]) -> str:
    return f"{us(percentile(values, 0.5))} / {us(percentile(values, 0.99))}"


def run(children: int, repeat: int, singles: int, transitions: int) -> list[Row]:
    with private_stack(LIMITS) as bench_stack:
        rows = submit_benchmark(bench_stack, children, repeat, singles)
        rows += aggregate_benchmark(transitions)
    return rows


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--children", type=int, default=10_000, help="children of each timed batch")
    args_parser.add_argument("--repeat", type=int, default=3, help="timed batches")
    args_parser.add_argument("--singles", type=int, default=10_000, help="job.submit of the baseline")
    args_parser.add_argument("--transitions", type=int, default=1_000, help="children (and standalone jobs) moved")
    args = args_parser.parse_args()
    report(run(args.children, args.repeat, args.singles, args.transitions), args.json)


if __name__ == "__main__":
    main()
