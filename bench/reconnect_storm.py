"""Benchmark 9: a reconnect storm: N sockets on one Daphne, SIGTERM, restart, until every one has its hello again.

    .venv/bin/python -m bench.reconnect_storm [--connections 5000] [--processes 5] [--deadline 180]
                                              [--backoff-cap 2]

A private Redis and SQLite database, one Daphne at a time (core.stack's command
line) on a port fixed for the run. N token sockets, 20 per user (the per-user
limit, RATE_LIMIT_CONNECTIONS_PER_USER, at its default), are opened by
--processes client processes, N/processes each, as bench.idle_connections opens
them (50 handshakes in flight in all, a socket counts once its hello arrived, no
retry): the connect rate is sockets per second from the first handshake to the
last hello, after one warm-up socket of another user.

Then Daphne gets SIGTERM and is waited for as `docker stop` does (the web
service has Docker's default grace period): SIGKILL if it has not exited after
10 s. As soon as it has exited, a new Daphne is started on the same port (a
restart: the time it takes to start, Django's set-up included, is part of the
storm). Every client socket reconnects by itself once its connection ends, as
the dashboard does (static/js/socket.js): "full jitter", a wait of
uniform(0, min(cap, 0.5 s x 2^attempt)) and at least 0.1 s before each attempt,
so 0.1-0.5 s before the first; an attempt that brings no hello within 10 s (the
dashboard's HELLO_TIMEOUT_MS, handshake included) is given up and counts as a
failure, like a refused connection or a close before the hello. Two deviations:
the cap is 2 s by default (--backoff-cap; the dashboard's is 30 s, which would
measure the clients' waits more than the server), and a close with 4008 (too
many connections for the user) is retried on the same schedule, not after the
dashboard's 60-120 s: it is counted among the errors by its code instead.
(jobsctl's session backs off the same way, 0.5 s doubling with jitter, up to
10 s.) A socket that gets its hello is "back"; should it be closed again before
the end, it reconnects again and counts as back only with its latest hello.

Reported, from the moment of the SIGTERM (time.time() in the benchmark, the
clients' clocks are the same machine's): when the old Daphne exited, when the new
one listened, when the clients saw their sockets end (first / last, and how: the
close codes), when each socket had its new hello (p50, p99, last), how many did
not within --deadline seconds, and every failed attempt by kind (refused, no hello
in 10 s, closed with a code before the hello, HTTP status: 403 is Daphne's own
answer to a handshake the application has not accepted within 5 s, its
--websocket_connect_timeout). Daphne's CPU time: the old one from SIGTERM to exit
(read from /proc while it is a zombie), the new one from its start to listening,
and from listening to the last hello. And the connection slots still counted in
Redis (gateway.throttle) once the old Daphne has exited: each one counts against
its user for CONNECTION_STALE_SECONDS, and past 20 the user's sockets are
refused with 4008.

Baseline, in the same run, the same way (first): bench.bare_asgi, a bare Channels
consumer that accepts and sends a one-field hello (no auth, no groups, no
database), served by the same Daphne command line and settings. The open-files
limit is raised as bench.idle_connections does (N + 200 are needed).

5,000 sockets by default; about 6 minutes for both servers here, most of it
ours running into its deadline (--connections 2000: about 4).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from bench.harness import (
    Row,
    Stack,
    Talker,
    child_lines,
    child_say,
    cpu_seconds,
    make_user,
    open_sockets,
    parser,
    percentile,
    private_stack,
    report,
)
from bench.idle_connections import open_from, raise_open_files_limit
from core import stack
from gateway.throttle import KEY_PREFIX

PER_USER = 20  # RATE_LIMIT_CONNECTIONS_PER_USER's default
IN_FLIGHT = 50  # first handshakes in flight, over all client processes (as bench.idle_connections)
DEFAULT_CONNECTIONS = 5_000
BARE_ASGI = "bench.bare_asgi:application"
OURS_ASGI = "core.asgi:application"
OPEN_SECONDS = 300  # no first handshake starts later than this, per server
# The dashboard's reconnection (static/js/socket.js), with the cap lowered from 30 s.
BACKOFF_BASE, BACKOFF_CAP, BACKOFF_MIN = 0.5, 2.0, 0.1  # --backoff-cap 30 is the dashboard's own
HELLO_TIMEOUT = 10.0  # the dashboard's HELLO_TIMEOUT_MS: from the start of an attempt to its hello
GRACE = 10.0  # docker stop: SIGKILL this long after SIGTERM


# --- a client process -------------------------------------------------------------------


class Refused(Exception):
    """An attempt the server answered, but not with a hello (e.g. an error frame and close 4008)."""


@dataclass
class Storm:
    """One client process's sockets through the restart."""

    backoff_cap: float = BACKOFF_CAP
    total: int = 0
    deadline: float = math.inf  # time.time() after which no attempt starts; set by the parent at SIGTERM
    finished: bool = False  # reported: a socket that ends now stays down
    up: set[int] = field(default_factory=set)  # sockets with a live connection and its hello
    dropped_at: dict[int, float] = field(default_factory=dict)  # first end seen, per socket
    back_at: dict[int, float] = field(default_factory=dict)  # latest hello after that, per socket
    drop_codes: Counter[str] = field(default_factory=Counter)  # how the first connections ended
    errors: Counter[str] = field(default_factory=Counter)  # failed attempts and later drops, by kind
    all_back: asyncio.Event = field(default_factory=asyncio.Event)  # every socket ended once and is up again


def client(backoff_cap: float) -> None:
    """Open the sockets the parent names, report; keep them through the restart; report again."""
    lines = child_lines()
    child_say({"up": True})
    order = next(lines)
    asyncio.run(weather(order, lines, backoff_cap))


async def weather(order: dict[str, Any], lines: Iterator[Any], backoff_cap: float) -> None:
    ws_url: str = order["ws_url"]
    tokens: list[str] = order["tokens"]
    started = time.time()
    opened_at: list[float] = []
    sockets = await open_sockets(ws_url, tokens, order["in_flight"], order["until"], opened_at)
    storm = Storm(backoff_cap)
    kept = [(i, tokens[i], s) for i, s in enumerate(sockets) if s is not None]
    storm.total = len(kept)
    storm.up = {i for i, _, _ in kept}
    tasks = [asyncio.create_task(keep(i, token, socket, ws_url, storm)) for i, token, socket in kept]
    child_say({"failed": len(tokens) - len(kept), "started": started, "opened_at": opened_at})
    # The parent's next line comes right after its SIGTERM: the time after which no attempt starts.
    signal_line = await asyncio.to_thread(next, lines, None)
    if signal_line is None:  # the parent gave up before the restart
        return
    storm.deadline = signal_line["deadline"]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(storm.all_back.wait(), max(0.0, storm.deadline - time.time()))
    storm.finished = True
    child_say(
        {
            "back_at": [storm.back_at[i] for i in storm.up if i in storm.back_at],
            "dropped_at": list(storm.dropped_at.values()),
            "drop_codes": storm.drop_codes,
            "errors": storm.errors,
        }
    )
    await asyncio.to_thread(next, lines, None)  # hold the sockets until the parent closes stdin
    for task in tasks:
        task.cancel()


async def keep(index: int, token: str, socket: Any, ws_url: str, storm: Storm) -> None:
    """Whenever this socket's connection ends, reconnect until a hello comes (or the deadline passes)."""
    while True:
        await socket.wait_closed()
        code = socket.close_code if socket.close_code is not None else 1006
        storm.up.discard(index)
        if storm.finished:
            return
        if index in storm.dropped_at:
            storm.errors[f"closed {code} after its new hello"] += 1
        else:
            storm.dropped_at[index] = time.time()
            storm.drop_codes[str(code)] += 1
        socket = await reconnect(ws_url, token, storm)
        if socket is None:
            return
        storm.back_at[index] = time.time()
        storm.up.add(index)
        if len(storm.back_at) == storm.total and len(storm.up) == storm.total:
            storm.all_back.set()


async def reconnect(ws_url: str, token: str, storm: Storm) -> Any:
    """A new connection with its hello, after the dashboard's backoff; None past the deadline."""
    attempt = 0
    while True:
        ceiling = min(storm.backoff_cap, BACKOFF_BASE * 2**attempt)
        await asyncio.sleep(max(BACKOFF_MIN, random.uniform(0, ceiling)))
        attempt += 1
        if time.time() > storm.deadline:
            return None
        try:
            return await attempt_hello(ws_url, token)
        except Exception as exc:
            storm.errors[describe(exc)] += 1


async def attempt_hello(ws_url: str, token: str) -> Any:
    """Connect and read the first frame within HELLO_TIMEOUT; the socket if it was a hello, else raise."""
    async with asyncio.timeout(HELLO_TIMEOUT):
        socket = await connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=None,  # the timeout above covers the handshake and the hello together
            ping_interval=None,
            max_queue=None,
            close_timeout=1,
        )
        try:
            first = json.loads(await socket.recv())
            if first.get("type") == "hello":
                return socket
            # The service refuses a socket by accepting it, sending an error frame and closing with a code.
            await socket.wait_closed()
        except BaseException:
            socket.transport.abort()  # a timeout or a close: no closing handshake to wait for
            raise
    what = first.get("code") or first.get("type")
    raise Refused(f"closed {socket.close_code} after an {first.get('type')} frame ({what})")


def describe(exc: Exception) -> str:
    """A failed attempt, by kind (the keys of the errors row)."""
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no hello within {HELLO_TIMEOUT:.0f} s"
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return "dropped before the HTTP response"
    if isinstance(exc, ConnectionClosed):
        return f"closed {exc.rcvd.code if exc.rcvd is not None else 1006} before its hello"
    return type(exc).__name__


# --- the benchmark ----------------------------------------------------------------------


@dataclass
class Measured:
    total: int
    opened_at: list[float]  # time.time() of each first hello, sorted
    failed: int
    started: float  # time.time() of the first handshake
    sigterm_at: float
    exited_at: float  # the old Daphne
    killed: bool  # it needed SIGKILL after GRACE
    listening_at: float  # the new Daphne
    dropped_at: list[float]  # sorted
    back_at: list[float]  # sorted
    drop_codes: Counter[str]
    errors: Counter[str]
    cpu_shutdown: float  # the old Daphne, SIGTERM -> exit
    cpu_startup: float  # the new Daphne, start -> listening
    cpu_storm: float  # the new Daphne, listening -> every socket back (or the deadline)
    stale_slots: dict[str, int]  # connection slots still counted per user once the old Daphne exited

    @property
    def opened(self) -> int:
        return len(self.opened_at)

    @property
    def rate(self) -> float:
        """Sockets opened per second, first handshake to last hello."""
        return self.opened / (self.opened_at[-1] - self.started) if self.opened else 0.0

    def after_sigterm(self, times: list[float], fraction: float) -> float:
        return percentile([t - self.sigterm_at for t in times], fraction)


@dataclass(frozen=True)
class Plan:
    processes: int  # client processes
    deadline: float  # seconds after SIGTERM
    backoff_cap: float  # seconds, the clients' longest wait between two attempts


def spawn_clients(bench_stack: Stack, plan: Plan, prefix: str) -> list[Talker]:
    command = ("-m", "bench.reconnect_storm", "--client", "--backoff-cap", str(plan.backoff_cap))
    talkers = [bench_stack.talker(f"{prefix}-client{i}", *command) for i in range(plan.processes)]
    for talker in talkers:
        talker.receive(timeout=60)  # up: imports done, so start-up is not counted as connect time
    return talkers


def warm_up(ws_url: str, token: str) -> None:
    """One socket of a user of its own, opened and closed: first-use costs stay out of the connect rate."""

    async def once() -> None:
        (socket,) = await open_sockets(ws_url, [token], 1)
        if socket is not None:
            await socket.close()

    asyncio.run(once())


def terminate(bench_stack: Stack) -> tuple[float, bool, float]:
    """SIGTERM the running Daphne, SIGKILL it after GRACE: (time it exited, killed?, CPU seconds it spent meanwhile)."""
    process = bench_stack.daphne
    assert process is not None
    before = cpu_seconds(process.pid)
    process.send_signal(signal.SIGTERM)
    killed = False
    deadline = time.monotonic() + GRACE
    # WNOWAIT: it stays a zombie, so /proc still has its CPU time once it has exited.
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if not killed and time.monotonic() > deadline:
            process.kill()
            killed = True
        time.sleep(0.01)
    exited_at = time.time()
    spent = cpu_seconds(process.pid) - before
    bench_stack.stop_daphne()  # reaps it
    return exited_at, killed, spent


def measure(bench_stack: Stack, application: str, tokens: list[str], warm_token: str, plan: Plan) -> Measured:
    name = "bare" if application == BARE_ASGI else "ours"
    port = stack.free_port()
    ws_url = bench_stack.start_daphne(application, port=port)
    clients = spawn_clients(bench_stack, plan, name)
    try:
        warm_up(ws_url, warm_token)
        opened = open_from(clients, ws_url, tokens, max(1, IN_FLIGHT // plan.processes), OPEN_SECONDS)
        time.sleep(2)  # let the server settle before the restart
        sigterm_at = time.time()
        exited_at, killed, cpu_shutdown = sigterm_and_wait(bench_stack, clients, sigterm_at + plan.deadline)
        stale_slots = counted_slots(bench_stack.redis_url)
        bench_stack.start_daphne(application, port=port)
        listening_at = time.time()
        assert bench_stack.daphne is not None
        new_pid = bench_stack.daphne.pid
        cpu_startup = cpu_seconds(new_pid)
        storm = [talker.receive(timeout=plan.deadline + 60) for talker in clients]
        cpu_storm = cpu_seconds(new_pid) - cpu_startup
    finally:
        bench_stack.stop_daphne()  # first, so the clients' sockets need no closing handshakes
        for talker in clients:
            talker.close()
            bench_stack.stop(talker.process)
    return Measured(
        total=len(tokens),
        opened_at=sorted(t for r in opened for t in r["opened_at"]),
        failed=sum(r["failed"] for r in opened),
        started=min(r["started"] for r in opened),
        sigterm_at=sigterm_at,
        exited_at=exited_at,
        killed=killed,
        listening_at=listening_at,
        dropped_at=sorted(t for r in storm for t in r["dropped_at"]),
        back_at=sorted(t for r in storm for t in r["back_at"]),
        drop_codes=sum((Counter(r["drop_codes"]) for r in storm), Counter()),
        errors=sum((Counter(r["errors"]) for r in storm), Counter()),
        cpu_shutdown=cpu_shutdown,
        cpu_startup=cpu_startup,
        cpu_storm=cpu_storm,
        stale_slots=stale_slots,
    )


def counted_slots(redis_url: str) -> dict[str, int]:
    """Open connections each user is counted for (gateway.throttle's sorted sets), by key.

    Read after the old Daphne exited: every slot still there was not given back,
    and counts against its user for CONNECTION_STALE_SECONDS (4008 past 20).
    """
    client = redis.Redis.from_url(redis_url)
    try:
        return {key.decode(): int(client.zcard(key)) for key in client.scan_iter(f"{KEY_PREFIX}:connections:*")}
    finally:
        client.close()


def sigterm_and_wait(bench_stack: Stack, clients: list[Talker], deadline: float) -> tuple[float, bool, float]:
    """Tell the clients the deadline, then stop Daphne as a deploy does (terminate's result)."""
    for talker in clients:
        talker.send({"deadline": deadline})
    return terminate(bench_stack)


def run(connections: int, plan: Plan) -> list[Row]:
    raise_open_files_limit(connections + 200)
    with private_stack() as bench_stack:
        users = -(-connections // PER_USER)
        user_tokens = [make_user(f"bench{i}")[1] for i in range(users + 1)]
        tokens = [user_tokens[i // PER_USER] for i in range(connections)]
        bare = measure(bench_stack, BARE_ASGI, tokens, user_tokens[-1], plan)
        ours = measure(bench_stack, OURS_ASGI, tokens, user_tokens[-1], plan)
    return rows(f"9 reconnect storm ({connections:,})", connections, plan, bare, ours)


# --- the rows ---------------------------------------------------------------------------


Cell = Callable[[Measured], str]  # one column's text of a row


def seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} s"


def counts(counter: Counter[str]) -> str:
    return "; ".join(f"{kind}: {n:,}" for kind, n in counter.most_common()) or "none"


def rows(name: str, connections: int, plan: Plan, bare: Measured, ours: Measured) -> list[Row]:
    def row(metric: str, cell: Cell, target: str = "", met: bool | None = None) -> Row:
        return Row(name, metric, cell(bare), cell(ours), target, met)

    def at(fraction: float) -> Cell:
        return lambda m: seconds(m.after_sigterm(m.back_at, fraction))

    def stale(m: Measured) -> str:
        if m is bare:
            return "-"  # no connection counts
        slots = m.stale_slots.values()
        return f"{sum(slots)} ({sum(1 for n in slots if n)}; {max(slots, default=0)})"

    def exited(m: Measured) -> str:
        return seconds(m.exited_at - m.sigterm_at) + (" (SIGKILL)" if m.killed else "")

    rate_met = bare.rate > 0 and ours.rate >= 0.5 * bare.rate
    back_met = len(ours.back_at) == ours.opened == connections
    return [
        row("connect rate (handshake + hello)", lambda m: f"{m.rate:.0f} /s", "ours >= 50% of bare", rate_met),
        row("opened / failed at first", lambda m: f"{m.opened} / {m.failed}"),
        row("SIGTERM -> old Daphne exited", exited, f"< {GRACE:.0f} s (no SIGKILL)", not ours.killed),
        row("SIGTERM -> new Daphne listening", lambda m: seconds(m.listening_at - m.sigterm_at)),
        row(
            "SIGTERM -> sockets seen ending, first / last",
            lambda m: f"{seconds(m.after_sigterm(m.dropped_at, 0))} / {seconds(m.after_sigterm(m.dropped_at, 1))}",
        ),
        row("how the old connections ended (close code: sockets)", lambda m: counts(m.drop_codes)),
        row(
            "slots still counted after the old Daphne exited (users; most for one)",
            stale,
            "0",
            sum(ours.stale_slots.values()) == 0,
        ),
        row("SIGTERM -> hello again, p50", at(0.5)),
        row("SIGTERM -> hello again, p99", at(0.99)),
        row("SIGTERM -> hello again, last", at(1.0)),
        row(
            f"sockets back within {plan.deadline:.0f} s / opened (backoff cap {plan.backoff_cap:g} s)",
            lambda m: f"{len(m.back_at)} / {m.opened}",
            f"all ({connections})",
            back_met,
        ),
        row("failed reconnection attempts (kind: count)", lambda m: counts(m.errors)),
        row(
            "Daphne CPU: old SIGTERM -> exit / new start -> listening / listening -> all back (or deadline)",
            lambda m: f"{m.cpu_shutdown:.1f} / {m.cpu_startup:.1f} / {m.cpu_storm:.1f} s",
        ),
    ]


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # a client process
    args_parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    args_parser.add_argument("--processes", type=int, default=5, help="client processes the sockets are spread over")
    args_parser.add_argument(
        "--deadline", type=float, default=180, help="seconds after SIGTERM a socket has to get its hello again"
    )
    args_parser.add_argument(
        "--backoff-cap",
        type=float,
        default=BACKOFF_CAP,
        help="the clients' longest wait between attempts (the dashboard's is 30)",
    )
    args = args_parser.parse_args()
    if args.client:
        client(args.backoff_cap)
        return
    report(run(args.connections, Plan(args.processes, args.deadline, args.backoff_cap)), args.json)


if __name__ == "__main__":
    main()
