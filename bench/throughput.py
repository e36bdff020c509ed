"""Benchmark 6: throughput of demo.countdown jobs submitted over WebSocket, end to end.

    .venv/bin/python -m bench.throughput [--clients 50] [--seconds 20] [--floor-seconds 10]

A private Redis and SQLite database, Daphne and a real Celery worker (core.stack's
command lines; concurrency 2, as `manage.py runstack` starts it). 50 clients
(asyncio + websockets, in this process), one token socket and one user each,
submit `demo.countdown` jobs with 10 steps and interval_ms 0; each client waits
for its job's final event (job.succeeded / failed / cancelled) before it submits
the next. RATE_LIMIT_SUBMITS_PER_MINUTE is raised to 100,000 for this private
stack only, so the per-user submit limit (30 a minute) does not cap the rate;
every other limit keeps its default.

After a 2 s warm-up, for --seconds: jobs per second whose final event arrived
in the window, and submit -> final event latency (client clock) of the jobs
submitted in it. The worker's share: each job's run time (Job.started_at ->
finished_at, stored by the worker) against its end to end time, and the sum of
run times over (window x worker concurrency), i.e. how busy the worker's slots
were. Each job's time split in four phases by the Job row's timestamps and the
client's wall clock (one machine, one clock): submit -> created_at (Daphne:
throttle, validation, the insert), created_at -> started_at (job.queued,
broker, worker pick-up, claim), started_at -> finished_at (the run), and
finished_at -> final event at the client (publish and delivery). CPU time per
job of each process (/proc utime + stime over the window: the worker and its
pool children, Daphne, Redis, this client process) shows where the 2 cores go.

Baseline, in the same run, right after ours: the minimal pipeline of
bench/minimal_pipeline.py, the essential work of the same job done well. Same
private Redis and database (the same Job table and indexes, the same
DATABASE_CONN_MAX_AGE), the same users, tokens and clients, the same window,
Daphne started the same way (`--app bench.minimal_pipeline:application`) and a
worker with the same command line and concurrency (`-A bench.minimal_pipeline:app`).
Its consumer authenticates the token, joins the user's group, and on job.submit
inserts the row as queued and send_task()s in one database call, then answers
job.accepted; its task updates the row to running, counts the 10 steps, updates
it to succeeded, and publishes job.started, one job.progress and job.succeeded
through one long-lived event loop per worker process. Target: ours >= 70 % of
its jobs/s. The same rows (phases, run time, CPU) come from its Job rows.

Last, in rows of their own, the floor any Celery-based service has here: the
raw Celery round trip at the same 50-way concurrency. A minimal Celery app in this
module (same broker, a worker with the same command line and concurrency, not
Django) runs a task that only pushes a reply onto a Redis list; 50 client
threads each `apply_async` it and BLPOP the reply, again and again, for
--floor-seconds. No result backend: the reply list is the cheapest way back.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from websockets.asyncio.client import connect

from bench.harness import (
    Row,
    Stack,
    celery_app,
    cpu_seconds,
    make_user,
    ms,
    parser,
    percentile,
    private_stack,
    report,
)
from core import stack
from tests import procfs

CONCURRENCY = 2  # the worker's, as `manage.py runstack` starts it
WARMUP = 2.0  # seconds before the window opens
FINAL = {"job.succeeded", "job.failed", "job.cancelled"}
PARAMS = {"steps": 10, "interval_ms": 0}

# --- the floor: a bare Celery app (its worker: `celery -A bench.throughput:floor_app worker`) ---

# The floor worker inherits the private stack's REDIS_URL; the benchmark sets it before sending.
floor_app = celery_app("bench_floor")


@functools.cache
def _replies() -> redis.Redis:
    return redis.Redis.from_url(floor_app.conf.broker_url)


@floor_app.task(name="bench.floor.reply")
def floor_reply(key: str) -> None:
    """The whole job of the floor task: tell the client it ran."""
    _replies().rpush(key, b"1")


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Done:
    submitted: float  # time.monotonic()
    finished: float
    job_id: str = ""
    wall: tuple[float, float] = (0.0, 0.0)  # time.time() at submit and at the final event, to set beside the Job row


@dataclass
class Measured:
    window: float  # seconds
    done: int  # jobs (or round trips) that ended in the window
    latencies: list[float]  # seconds, submit -> final, of those submitted in the window
    errors: int
    cpu: dict[str, float]  # process -> CPU seconds over the window
    # Seconds, of each job counted: submit -> row created (Daphne), -> started_at (queue, broker,
    # worker pick-up), -> finished_at (the worker's run), -> final event at the client.
    phases: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def run_times(self) -> list[float]:
        return [phase[2] for phase in self.phases]

    @property
    def rate(self) -> float:
        return self.done / self.window


class Window:
    """The measuring window, opened after the warm-up, shared by every client."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.opens = time.monotonic() + WARMUP
        self.closes = self.opens + seconds

    def measured(self, done: list[Done], errors: int, cpu: dict[str, float]) -> Measured:
        counted = sum(1 for d in done if self.opens <= d.finished <= self.closes)
        latencies = [d.finished - d.submitted for d in done if d.submitted >= self.opens]
        return Measured(self.seconds, counted, latencies, errors, cpu)


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in group) for name, group in pids.items()}


def redis_pids() -> list[int]:
    """This process's private redis-server (a child of it)."""
    for pid in procfs.descendants(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server":
                return [pid]
        except OSError:
            continue
    return []


def sample_cpu(pids: dict[str, list[int]], window: Window, into: dict[str, float]) -> None:
    """At the window's opening and closing, read each process's CPU time (run in a thread)."""
    time.sleep(max(0.0, window.opens - time.monotonic()))
    before = cpu_of(pids)
    time.sleep(max(0.0, window.closes - time.monotonic()))
    into.update({name: value - before[name] for name, value in cpu_of(pids).items()})


def start_worker(bench_stack: Stack, name: str, app: Celery, app_path: str) -> subprocess.Popen[bytes]:
    """A Celery worker with core.stack's command line for `app_path`, once it answers a ping."""
    command = stack.worker_command(name, CONCURRENCY, loglevel="WARNING")
    command[command.index("-A") + 1] = app_path
    with open(bench_stack.directory / f"{name}.log", "ab") as log:
        process = subprocess.Popen(command, env=bench_stack.env, stdout=log, stderr=subprocess.STDOUT)
    bench_stack.processes.append(process)
    stack.wait_until(lambda: bool(app.control.ping(timeout=0.5)), name, timeout=60, process=process)
    return process


# --- the WebSocket clients, and ours: the service ----------------------------------------------


async def submitter(ws_url: str, token: str, window: Window, done: list[Done]) -> int:
    """One client: submit, wait for the final event, repeat until the window closes. Returns its errors."""
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(ws_url, additional_headers=headers, open_timeout=30, max_queue=None) as socket:
        await asyncio.wait_for(socket.recv(), 30)  # hello
        while time.monotonic() < window.closes:
            request_id = uuid.uuid4().hex
            submitted, submitted_wall = time.monotonic(), time.time()
            submit = {"type": "job.submit", "request_id": request_id, "kind": "demo.countdown", "params": PARAMS}
            await socket.send(json.dumps(submit))
            job_id = await wait_final(socket, request_id)
            if job_id is None:
                errors += 1
                await asyncio.sleep(1)
            else:
                done.append(Done(submitted, time.monotonic(), job_id, (submitted_wall, time.time())))
    return errors


async def wait_final(socket: Any, request_id: str) -> str | None:
    """The job's id once its final event arrived; None if the server answered an error."""
    job_id: str | None = None
    finished: set[str] = set()  # a job's final event may overtake job.accepted
    while job_id is None or job_id not in finished:
        message = json.loads(await asyncio.wait_for(socket.recv(), 60))
        kind = message["type"]
        if kind == "job.accepted" and message["request_id"] == request_id:
            job_id = message["job"]["id"]
        elif kind in FINAL:
            finished.add(message["job"]["id"])
        elif kind == "error":
            return None
    return job_id


async def drive(ws_url: str, tokens: list[str], window: Window) -> tuple[list[Done], int]:
    done: list[Done] = []
    errors = await asyncio.gather(*(submitter(ws_url, token, window, done) for token in tokens))
    return done, sum(errors)


def measure_pipeline(
    bench_stack: Stack, worker: subprocess.Popen[bytes], tokens: list[str], seconds: float
) -> Measured:
    """Drive the Daphne and worker just started with one client per token; phases from the Job rows."""
    from tasks.models import Job  # only once private_stack has set up Django

    assert bench_stack.daphne is not None
    pids = {
        "worker": [worker.pid, *procfs.descendants(worker.pid)],
        "Daphne": [bench_stack.daphne.pid],
        "Redis": redis_pids(),
        "clients": [os.getpid()],
    }
    window = Window(seconds)
    cpu: dict[str, float] = {}
    sampler = threading.Thread(target=sample_cpu, args=(pids, window, cpu))
    sampler.start()
    done, errors = asyncio.run(drive(bench_stack.ws_url, tokens, window))
    sampler.join()
    measured = window.measured(done, errors, cpu)
    counted = {d.job_id: d.wall for d in done if window.opens <= d.finished <= window.closes}
    jobs = Job.objects.filter(pk__in=counted).values_list("id", "created_at", "started_at", "finished_at")
    for job_id, created, started, finished in jobs:
        if started is None or finished is None:
            continue
        submitted, final = counted[str(job_id)]
        times = (submitted, created.timestamp(), started.timestamp(), finished.timestamp(), final)
        measured.phases.append((times[1] - times[0], times[2] - times[1], times[3] - times[2], times[4] - times[3]))
    return measured


def ours(bench_stack: Stack, tokens: list[str], seconds: float) -> Measured:
    # Only once private_stack has set up Django (and the floor worker, which imports this module, never does).
    from celery_app import app

    bench_stack.start_daphne()
    worker = start_worker(bench_stack, "bench-worker", app, "celery_app")
    measured = measure_pipeline(bench_stack, worker, tokens, seconds)
    bench_stack.stop(worker)
    bench_stack.stop_daphne()
    return measured


# --- the baseline: the minimal pipeline (bench.minimal_pipeline) ----------------------------------


def minimal(bench_stack: Stack, tokens: list[str], seconds: float) -> Measured:
    """The same clients against bench.minimal_pipeline's consumer and worker, on the same stack."""
    # Imported here, not at the top: it sets Django up, which only private_stack may do first.
    from bench.minimal_pipeline import app as minimal_app

    minimal_app.conf.update(broker_url=bench_stack.redis_url)
    bench_stack.start_daphne("bench.minimal_pipeline:application")
    worker = start_worker(bench_stack, "bench-minimal", minimal_app, "bench.minimal_pipeline:app")
    measured = measure_pipeline(bench_stack, worker, tokens, seconds)
    bench_stack.stop(worker)
    bench_stack.stop_daphne()
    return measured


# --- the floor: raw Celery round trips --------------------------------------------------------


def floor(bench_stack: Stack, clients: int, seconds: float) -> Measured:
    """`clients` threads, each: apply_async the reply task, BLPOP its reply, again."""
    floor_app.conf.update(broker_url=bench_stack.redis_url)
    worker = start_worker(bench_stack, "bench-floor", floor_app, "bench.throughput:floor_app")
    pids = {"worker": [worker.pid, *procfs.descendants(worker.pid)], "Redis": redis_pids(), "clients": [os.getpid()]}
    window = Window(seconds)
    cpu: dict[str, float] = {}
    done: list[Done] = []
    errors: list[int] = []

    def loop() -> None:
        client = redis.Redis.from_url(bench_stack.redis_url)
        key = f"bench:floor:{uuid.uuid4().hex}"
        while time.monotonic() < window.closes:
            submitted = time.monotonic()
            floor_reply.apply_async(args=(key,))
            if client.blpop([key], timeout=30) is None:
                errors.append(1)
            else:
                done.append(Done(submitted, time.monotonic()))
        client.close()

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    threads.append(threading.Thread(target=sample_cpu, args=(pids, window, cpu)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bench_stack.stop(worker)
    return window.measured(done, len(errors), cpu)


# --- the table ------------------------------------------------------------------------------


TARGET = 0.70  # ours / the minimal pipeline, in jobs/s


def per_job(measured: Measured) -> str:
    names = ("worker", "Daphne", "Redis", "clients")
    return " / ".join(
        f"{measured.cpu[n] / max(measured.done, 1) * 1000:.1f}" if n in measured.cpu else "-" for n in names
    )


def phases(measured: Measured) -> str:
    medians = (percentile([phase[i] for phase in measured.phases], 0.5) for i in range(4))
    return " / ".join(f"{median * 1000:.1f}" for median in medians)


def latency(measured: Measured, fraction: float) -> str:
    return ms(percentile(measured.latencies, fraction))


def cores(measured: Measured) -> str:
    return f"{sum(measured.cpu.values()) / measured.window:.2f}"


def worker_rows(name: str, base: Measured, mine: Measured) -> list[Row]:
    """What the Job rows tell of the worker's part, for the minimal pipeline (baseline) and ours."""

    def run50(measured: Measured) -> float:
        return percentile(measured.run_times, 0.5)

    def share(measured: Measured) -> str:
        return f"{run50(measured) / percentile(measured.latencies, 0.5):.1%}"

    def busy(measured: Measured) -> str:
        return f"{sum(measured.run_times) / (measured.window * CONCURRENCY):.0%}"

    return [
        Row(name, "worker run time per job p50 (started_at -> finished_at)", ms(run50(base)), ms(run50(mine))),
        Row(name, "worker's share of end to end (p50 run time / p50 submit -> final)", share(base), share(mine)),
        Row(name, "p50 of each phase (see the docstring), ms", phases(base), phases(mine)),
        Row(name, f"worker slots busy (run time / (window x {CONCURRENCY}))", busy(base), busy(mine)),
    ]


def rows(name: str, base: Measured, trips: Measured, mine: Measured) -> list[Row]:
    """Ours against the minimal pipeline (the baseline column), then against the Celery floor."""
    ratio = mine.rate / base.rate if base.rate else 0.0
    return [
        Row(name, "jobs/s end to end (baseline: minimal pipeline)", f"{base.rate:.1f}", f"{mine.rate:.1f}"),
        Row(name, "ours / minimal pipeline (jobs/s)", "100%", f"{ratio:.0%}", f">= {TARGET:.0%}", ratio >= TARGET),
        Row(name, "submit -> final event p50", latency(base, 0.5), latency(mine, 0.5)),
        Row(name, "submit -> final event p99", latency(base, 0.99), latency(mine, 0.99)),
        *worker_rows(name, base, mine),
        Row(name, "CPU ms per job: worker / Daphne / Redis / clients", per_job(base), per_job(mine)),
        Row(name, "CPU used in the window (cores; the machine has 2)", cores(base), cores(mine)),
        Row(
            name,
            "completed in window / errors",
            f"{base.done} / {base.errors}",
            f"{mine.done} / {mine.errors}",
            "- / 0",
            mine.errors == 0,
        ),
        *floor_rows(name, trips, mine),
    ]


def floor_rows(name: str, trips: Measured, mine: Measured) -> list[Row]:
    """The floor any Celery-based service has here (baseline column) beside ours."""
    return [
        Row(name, "Celery round trips/s (floor) vs our jobs/s", f"{trips.rate:.1f}", f"{mine.rate:.1f}"),
        Row(name, "Celery round trip p50 (floor) vs our submit -> final p50", latency(trips, 0.5), latency(mine, 0.5)),
        Row(
            name, "Celery round trip p99 (floor) vs our submit -> final p99", latency(trips, 0.99), latency(mine, 0.99)
        ),
        Row(
            name,
            "CPU ms per round trip (floor) / per job: worker / Daphne / Redis / clients",
            per_job(trips),
            per_job(mine),
        ),
        Row(name, "CPU used in the window (floor; cores)", cores(trips), cores(mine)),
        Row(name, "Celery round trips in window / errors (floor)", f"{trips.done} / {trips.errors}", "-"),
    ]


def run(clients: int, seconds: float, floor_seconds: float) -> list[Row]:
    with private_stack({"RATE_LIMIT_SUBMITS_PER_MINUTE": "100000"}) as bench_stack:
        tokens = [make_user(f"client{i}")[1] for i in range(clients)]
        # Ours first, as in every earlier run, so its figures stay comparable with theirs. The
        # minimal pipeline then inserts into a Job table a few thousand rows larger (its indexes a
        # level deeper at most): if that biases anything, it is against the baseline, not for ours.
        # The floor touches no database, so its place does not matter.
        mine = ours(bench_stack, tokens, seconds)
        base = minimal(bench_stack, tokens, seconds)
        trips = floor(bench_stack, clients, floor_seconds)
    return rows(f"6 throughput, demo.countdown (10 steps), {clients} clients", base, trips, mine)


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--clients", type=int, default=50)
    args_parser.add_argument(
        "--seconds", type=float, default=20, help="measuring window for ours and for the minimal pipeline"
    )
    args_parser.add_argument("--floor-seconds", type=float, default=10, help="measuring window for the floor")
    args = args_parser.parse_args()
    report(run(args.clients, args.seconds, args.floor_seconds), args.json)


if __name__ == "__main__":
    main()
