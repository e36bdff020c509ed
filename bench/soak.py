"""A chaos soak with exact accounting: a steady mixed load while processes die, then the books.

    .venv/bin/python -m bench.soak [--minutes 10] [--seed 1] [--users 30] [--rate 0.8]
                                   [--broker redis|rabbitmq] [--fault-every 20] [--faults pool,worker,...]
                                   [--settle 180] [--logs DIR] [--json FILE]

Everything runs privately (bench.soak_stack): a PostgreSQL cluster made with
initdb on a free port, a redis-server keeping an append-only file, an SMTP sink
(tests.smtp) recording every message, two Daphnes, two Celery workers
(concurrency 2) that a supervisor starts again when they die, Celery beat
running the reconciler every 2 s. With `--broker rabbitmq` the Celery broker is
a vhost of its own on the machine's RabbitMQ (created and deleted here; that
server is never restarted), and killing Redis hits the channel layer only.

Client processes (bench.soak_clients) hold 1-3 sockets per user, split over
both Daphnes, submit demo.countdown jobs, email.send jobs to addresses used
once, batches, and cancel and retry jobs; each socket drops itself now and then
and merges every hello by seq. A chaos thread (bench.soak_chaos) kills pool
processes, whole workers, Daphne (SIGTERM and SIGKILL), Redis (with and without
its data) and PostgreSQL at seeded random times, measuring each recovery.

Then the chaos stops, the load stops, and the soak waits (at most --settle
seconds) until no job is queued or running; the sockets' views are compared
with the database, every socket reconnects once more and they are compared
again, and the table is printed (bench.soak_accounting). The exit code is 1 if any
line with a target missed it. docs/benchmarks.md, "Soak", says how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DatabaseError

from bench.harness import Row, Talker, make_user, parser, report
from bench.soak_chaos import CHAOS_DAPHNE, FAULTS, Chaos, probe
from bench.soak_stack import Postgres, Redis, Services, rss_mib
from core import stack
from tests.rabbitmq import private_vhost
from tests.smtp import SmtpServer, serving

CLIENT_PROCESSES = 2
SCHEDULING = 5  # every fifth user has a schedule submitting a countdown every minute while the load runs
WARM_UP = 15.0  # seconds of load before the first fault (and the first memory sample)
SETTLED_QUIET = 2.0  # seconds after the last job finished for its last frames to reach every socket
# Short recovery times, so a soak settles in seconds (tests/integration/faults use the same idea).
SOAK_SETTINGS = {
    "JOBS_RECONCILE_SECONDS": "2",
    "JOBS_REQUEUE_AFTER_SECONDS": "5",
    "JOBS_HEARTBEAT_SECONDS": "1",
    "JOBS_LEASE_SECONDS": "4",
    # Every job of a user fits in its hello, so a final view can be compared with the database job by job.
    "JOBS_SNAPSHOT_FINISHED": "500",
    # Killed Daphnes leave connection slots counted until they go stale; the soak's users reconnect often.
    "RATE_LIMIT_CONNECTIONS_PER_USER": "100",
    "RATE_LIMIT_SUBMITS_PER_MINUTE": "120",
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
    "DATABASE_CONN_MAX_AGE": "60",
    "DJANGO_SETTINGS_MODULE": "core.settings.test",
}


@dataclass
class Run:
    """What one soak holds while it runs."""

    args: argparse.Namespace
    directory: Path
    postgres: Postgres
    redis: Redis
    smtp: SmtpServer
    services: Services
    started: float = field(default_factory=time.time)
    clients: list[Talker] = field(default_factory=list)
    socket_daphne: dict[str, int] = field(default_factory=dict)
    owner_of_socket: dict[str, int] = field(default_factory=dict)
    owners: list[int] = field(default_factory=list)
    probe_token: str = ""
    chaos: threading.Thread | None = None
    chaos_stop: threading.Event = field(default_factory=threading.Event)
    chaos_abort: threading.Event = field(default_factory=threading.Event)  # also skip the current measurement


def environment(directory: Path, postgres: Postgres, redis: Redis, smtp: SmtpServer, broker: str) -> dict[str, str]:
    env = {
        **os.environ,
        **SOAK_SETTINGS,
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis.url,
        "EMAIL_URL": smtp.url,
        "VAR_DIR": str(directory / "var"),
    }
    if broker:
        # As the fault tests do: the value docs/operations.md has operators set for the kinds' limits
        # (up to 31 minutes); the shared server keeps its default 30, which no soak job comes near.
        env.update(CELERY_BROKER_URL=broker, RABBITMQ_CONSUMER_TIMEOUT=str(45 * 60))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@contextlib.contextmanager
def private_stack(args: argparse.Namespace) -> Iterator[Run]:
    """Start everything; stop and remove everything on the way out, whatever happened."""
    directory = Path(tempfile.mkdtemp(prefix="jobs-soak-"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, directory, True)
        if args.logs is not None:
            cleanup.callback(keep_logs, directory, args.logs)
        postgres = Postgres(directory / "pg")
        cleanup.callback(postgres.stop, "immediate")
        postgres.create()
        redis = Redis(directory / "redis")
        cleanup.callback(redis.stop)
        redis.start()
        smtp = cleanup.enter_context(serving())
        broker = cleanup.enter_context(private_vhost()) if args.broker == "rabbitmq" else ""
        env = environment(directory, postgres, redis, smtp, broker)
        setup_django(env)
        cleanup.callback(close_database)
        services = Services(directory, env, [stack.free_port(), stack.free_port()])
        cleanup.callback(services.stop_all)
        run = Run(args, directory, postgres, redis, smtp, services)
        cleanup.callback(close_clients, run)
        # Last in, first out: the fault under way is repaired before anything is stopped.
        cleanup.callback(stop_chaos, run, abort=True)
        yield run


def keep_logs(directory: Path, into: Path) -> None:
    """Copy every process's log (and PostgreSQL's) out of the temporary directory before it goes."""
    into.mkdir(parents=True, exist_ok=True)
    for log in [*directory.glob("*.log"), *directory.glob("pg/*.log")]:
        shutil.copy(log, into / log.name)


def setup_django(env: dict[str, str]) -> None:
    """This process reads the books from the private database, so its Django points there too.

    Django is set up here, not at import: the database's URL exists only once its cluster does.
    """
    import django
    from django.core.management import call_command

    os.environ.update(env)
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def close_database() -> None:
    from django.db import connections

    connections.close_all()


def stop_chaos(run: Run, abort: bool = False) -> None:
    """No new fault; wait until the one under way is over: its process started again, its recovery
    measured (unless `abort`: on the way out after an error or Ctrl-C)."""
    if abort:
        run.chaos_abort.set()
    run.chaos_stop.set()
    if run.chaos is not None:
        run.chaos.join()


def close_clients(run: Run) -> None:
    for client in run.clients:
        client.close(timeout=10)


def start_services(run: Run) -> None:
    for index in range(2):
        run.services.start_daphne(index)
        run.services.start_worker(index)
    run.services.start_beat()


def make_users(run: Run, rng: random.Random) -> list[list[dict[str, Any]]]:
    """The soak's users and where their sockets go, split among the client processes."""
    plans: list[list[dict[str, Any]]] = [[] for _ in range(CLIENT_PROCESSES)]
    for n in range(run.args.users):
        user, token = make_user(f"soak{n}")
        run.owners.append(user.pk)
        daphnes = [(n + i) % 2 for i in range(rng.randint(1, 3))]
        for i, daphne in enumerate(daphnes):
            run.socket_daphne[f"soak{n}/{i}"] = daphne
            run.owner_of_socket[f"soak{n}/{i}"] = user.pk
        spec = {"name": f"soak{n}", "token": token, "daphnes": daphnes, "schedule": n % SCHEDULING == 0}
        plans[n % CLIENT_PROCESSES].append(spec)
    return plans


def start_clients(run: Run, plans: list[list[dict[str, Any]]]) -> None:
    rate = run.args.rate / run.args.users  # actions per second of each user
    urls = [run.services.ws_url(i) for i in range(2)]
    for index, users in enumerate(plans):
        client = Talker(f"client{index}", spawn_client(run, index))
        run.clients.append(client)
        client.send({"ws_urls": urls, "users": users, "seed": run.args.seed * 100 + index, "rate": rate})
    for client in run.clients:
        client.receive(timeout=60)


def spawn_client(run: Run, index: int) -> subprocess.Popen[bytes]:
    with open(run.directory / f"client{index}.log", "ab") as log:
        return subprocess.Popen(
            stack.python_command("-m", "bench.soak_clients"),
            env=run.services.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )


def sample_memory(run: Run) -> dict[str, tuple[int, float]]:
    """RSS of each long-lived process (a worker with its pool), by role."""
    services = run.services
    roles: dict[str, list[int]] = {}
    for index, daphne in enumerate(services.daphnes):
        if daphne is not None:
            roles[f"daphne-{index}"] = [daphne.pid]
    for index, worker in enumerate(services.workers):
        if worker is not None:
            roles[f"worker-{index} (with its pool)"] = [worker.pid, *services.pool_pids(index)]
    if services.beat is not None:
        roles["beat"] = [services.beat.pid]
    if run.redis.process is not None:
        roles["redis-server"] = [run.redis.process.pid]
    postmaster = run.postgres.postmaster_pid()
    if postmaster is not None:
        roles["postgres (postmaster)"] = [postmaster]
    roles["soak (SMTP sink, watcher)"] = [os.getpid()]
    for client in run.clients:
        roles[client.name] = [client.process.pid]
    return {role: (pids[0], rss_mib(pids)) for role, pids in roles.items()}


def wait_ready(run: Run) -> None:
    """Until a job goes through the whole stack (Daphne, broker, a worker, the channel layer)."""
    _, run.probe_token = make_user("soak-probe")
    if not asyncio.run(probe(run.services.ws_url(1 - CHAOS_DAPHNE), run.probe_token, 120)):
        raise stack.StackError("the soak's stack did not run a first job within 120 s; see its logs")


def soak(run: Run) -> list[Row]:
    from bench import soak_accounting as books  # reads the models: only once Django is set up

    rng = random.Random(run.args.seed)
    start_services(run)
    run.services.supervise(lambda index: print(f"supervisor: worker {index} started again", file=sys.stderr))
    wait_ready(run)
    start_clients(run, make_users(run, rng))
    run.started = time.time()
    watcher = books.Watcher()
    threading.Thread(target=watcher.run, name="soak-watcher", daemon=True).start()
    chaos = Chaos(
        rng,
        run.services,
        run.redis,
        run.postgres,
        run.clients,
        run.socket_daphne,
        run.probe_token,
        run.args.fault_every,
        run.args.faults,
        stop=run.chaos_stop,
        abort=run.chaos_abort,
    )
    time.sleep(WARM_UP)
    memory = books.Memory(start=sample_memory(run))
    run.chaos = threading.Thread(target=chaos.run, name="soak-chaos", daemon=True)
    run.chaos.start()
    time.sleep(max(0.0, run.started + run.args.minutes * 60 - time.time()))
    progress("chaos stops")
    stop_chaos(run)
    return settle_and_count(run, chaos, watcher, memory)


@dataclass
class Settled:
    """What the clients and the database say once the chaos and the load have stopped."""

    pending: int  # submissions still unacknowledged when the load stopped
    schedules_left: int  # schedules the clients could not delete when the load stopped
    seconds: float  # until no job was queued or running
    live: list[dict[str, Any]]  # each client's views before the final reconnect
    finals: list[dict[str, Any]]  # each client's views after it, and its counts


def settle_and_count(run: Run, chaos: Chaos, watcher: Any, memory: Any) -> list[Row]:
    from bench import soak_accounting as books

    settled = settle(run, lambda: books.unfinished(run.owners))
    memory.end = sample_memory(run)
    watcher.stop.set()
    args = run.args
    setup = f"{args.minutes:g} min, seed {args.seed}, {args.users} users, broker {args.broker}"
    sockets = f"{len(run.socket_daphne)} sockets, faults about every {args.fault_every:g} s"
    return [
        Row("soak", "run", "-", f"{setup}, {sockets}"),
        *books.job_rows(settled.finals, run.owners, watcher),
        books.exactly("submissions still unacknowledged when the load stopped", settled.pending),
        books.exactly("schedules not deleted when the load stopped", settled.schedules_left),
        Row(
            "soak",
            "settle period: until no job is queued or running",
            "-",
            f"{settled.seconds:.0f} s",
            f"<= {args.settle:.0f} s",
            settled.seconds <= args.settle,
        ),
        *books.email_rows(run.smtp, run.owners),
        *books.live_view_rows(settled.live, run.owner_of_socket),
        *books.view_rows(settled.finals, run.owner_of_socket),
        *books.fault_rows(chaos.faults, chaos.allowed, run.services.worker_restarts, run.started),
        *books.rss_rows(memory),
    ]


def settle(run: Run, busy: Callable[[], bool]) -> Settled:
    """Stop the load, wait until no job is unfinished, read the views, then have every socket reconnect."""
    progress("load stops")
    pending = [client_command(client, {"cmd": "stop_load", "timeout": 60}, 90) for client in run.clients]
    close_database()  # its connection may predate the last PostgreSQL restart
    seconds = wait_settled(busy, run)
    time.sleep(SETTLED_QUIET)
    live = [client_command(client, {"cmd": "views"}, 60) for client in run.clients]
    progress(f"settled in {seconds:.0f} s; final reconnect")
    finals = [client_command(client, {"cmd": "final", "timeout": 120}, 150) for client in run.clients]
    left = sum(p["schedules_left"] for p in pending)
    return Settled(sum(p["pending"] for p in pending), left, seconds, live, finals)


def wait_settled(busy: Callable[[], bool], run: Run) -> float:
    started = time.monotonic()
    deadline = started + run.args.settle
    while time.monotonic() < deadline:
        with contextlib.suppress(DatabaseError):  # PostgreSQL may still be recovering from its last restart
            if not busy():
                break
        time.sleep(1)
    return time.monotonic() - started


def client_command(client: Talker, command: dict[str, Any], timeout: float) -> Any:
    client.send(command)
    return client.receive(timeout=timeout)


def progress(what: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def faults(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = set(names) - set(FAULTS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown fault(s): {', '.join(sorted(unknown)) or 'none given'}")
    return names


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--minutes", type=float, default=10, help="load and chaos, before the settle period")
    args_parser.add_argument("--seed", type=int, default=1, help="the chaos's and the clients' random choices")
    args_parser.add_argument("--users", type=int, default=30, help="users, each with 1-3 sockets")
    args_parser.add_argument("--rate", type=float, default=0.8, help="client actions per second, all users together")
    args_parser.add_argument("--fault-every", type=float, default=20, help="mean seconds between two faults")
    args_parser.add_argument("--settle", type=float, default=180, help="seconds allowed to finish every job")
    args_parser.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis")
    args_parser.add_argument(
        "--faults", type=faults, default=FAULTS, help=f"comma-separated, of {', '.join(FAULTS)} (default: all)"
    )
    args_parser.add_argument("--logs", type=Path, help="copy every process's log into this directory at the end")
    args = args_parser.parse_args()
    # SIGTERM (a runner's time limit) unwinds like Ctrl-C: every process and directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with private_stack(args) as run:
        rows = soak(run)
        report(rows, args.json)
    sys.exit(1 if any(row.met is False for row in rows) else 0)


if __name__ == "__main__":
    main()
