"""Benchmark 4: idle WebSocket connections on one Daphne: memory each, and connect rate.

    .venv/bin/python -m bench.idle_connections [--connections 10000] [--processes 10] [--open-seconds 300]

A private Redis and SQLite database, and one Daphne process at a time (core.stack's
command line). N token sockets are opened by --processes client processes
(asyncio + websockets, N/processes sockets each; 50 handshakes in flight in
total), each socket counting as open once its hello arrived, and then held open
and idle. The sockets belong to N/20 users, 20 each, because the service allows
20 sockets per user (RATE_LIMIT_CONNECTIONS_PER_USER, left at its default).

Reported: Daphne's VmRSS growth divided by the sockets opened, measured from
after one warm-up socket (imports, first-use caches and pools are not counted)
to 2 s after the last socket opened; the connect rate, sockets opened per
second from the first handshake to the last hello (token check, connection
count, group joins and the hello snapshot, with client and server on the same
2 cores), and the same rate while the first and while the last quarter of the
sockets opened (does it slow down as sockets accumulate?); and Daphne's CPU time
(all its threads) per socket opened, over the same span and the 2 s after.

Baseline, in the same run, the same way: bench.bare_asgi, a bare Channels app
on the same settings and channel layer, whose consumer accepts, sends a
one-field hello and does nothing else (no auth, no groups, no database).

The open-files limit: Daphne needs one descriptor per socket, so this process
raises its soft RLIMIT_NOFILE to the hard limit (20,000 here) before starting
Daphne and the clients, which inherit it; fewer than N + 200 fails at once.

10,000 sockets by default, as the issue asks. They used to stall near 5,500:
every socket re-checked its own credential every 15 s on Channels' single
database thread (database_sync_to_async), with a new SQLite connection per call,
which saturated that thread, and new handshakes waited past the clients' 30 s
timeout. Now each Daphne process re-checks all its sockets in one batch
(gateway.recheck) and keeps its database connection (CONN_MAX_AGE). Both
servers' runs take about 4-5 minutes together here; --connections 2000 gives a
quicker look. No handshake starts after --open-seconds, so a run always ends.
"""

from __future__ import annotations

import asyncio
import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

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
    private_stack,
    report,
)
from tests import procfs

PER_USER = 20  # RATE_LIMIT_CONNECTIONS_PER_USER's default
IN_FLIGHT = 50  # handshakes in flight, over all client processes
DEFAULT_CONNECTIONS = 10_000
BARE_ASGI = "bench.bare_asgi:application"
OURS_ASGI = "core.asgi:application"


@dataclass
class Measured:
    opened_at: list[float]  # time.time() of each hello, sorted
    failed: int
    started: float  # time.time() of the first handshake
    rss_before: int  # KiB, Daphne with the warm-up socket
    rss_after: int  # KiB, Daphne with every socket open
    cpu: float  # s, Daphne's CPU time from the first handshake to the last hello (and the 2 s idle after)

    @property
    def opened(self) -> int:
        return len(self.opened_at)

    @property
    def per_connection(self) -> float:
        """KiB of Daphne's RSS per socket."""
        return (self.rss_after - self.rss_before) / max(self.opened, 1)

    @property
    def rate(self) -> float:
        """Sockets opened per second, first handshake to last hello."""
        return self.opened / (self.opened_at[-1] - self.started) if self.opened else 0.0

    def quarter_rates(self) -> tuple[float, float]:
        """Sockets per second while the first quarter opened, and while the last quarter did."""
        quarter = self.opened // 4
        if quarter < 2:
            return math.nan, math.nan
        first = quarter / (self.opened_at[quarter - 1] - self.started)
        last = quarter / (self.opened_at[-1] - self.opened_at[-quarter - 1])
        return first, last


# --- a client process -------------------------------------------------------------------


def client() -> None:
    """Open the sockets the parent names, say how it went, hold them until stdin closes."""
    lines = child_lines()
    child_say({"up": True})
    order = next(lines)
    asyncio.run(hold(order["ws_url"], order["tokens"], order["in_flight"], order["until"]))


async def hold(ws_url: str, tokens: list[str], in_flight: int, until: float) -> None:
    started = time.time()
    opened_at: list[float] = []
    sockets = [s for s in await open_sockets(ws_url, tokens, in_flight, until, opened_at) if s is not None]
    child_say({"failed": len(tokens) - len(sockets), "started": started, "opened_at": opened_at})
    # Idle until the parent closes stdin; the sockets go when the process exits.
    await asyncio.to_thread(sys.stdin.read)


# --- the benchmark ----------------------------------------------------------------------


def raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"{needed} open files are needed, the hard limit is {hard}: use fewer --connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))


def spawn_clients(bench_stack: Stack, count: int, prefix: str) -> list[Talker]:
    command = ("-m", "bench.idle_connections", "--client")
    talkers = [bench_stack.talker(f"{prefix}-client{i}", *command) for i in range(count)]
    for talker in talkers:
        talker.receive(timeout=60)  # up: imports done, so start-up is not counted as connect time
    return talkers


def open_from(talkers: list[Talker], ws_url: str, tokens: list[str], in_flight: int, budget: float) -> list[Any]:
    """Send each client its share of `tokens` at once; their reports once every socket opened or failed.

    No handshake starts after `budget` seconds; those already started may take 60 s more.
    """
    share = -(-len(tokens) // len(talkers))
    until = time.time() + budget
    for i, talker in enumerate(talkers):
        order = {"ws_url": ws_url, "tokens": tokens[i * share : (i + 1) * share], "in_flight": in_flight}
        talker.send({**order, "until": until})
    return [talker.receive(timeout=budget + 90) for talker in talkers]


def measure(
    bench_stack: Stack, application: str, tokens: list[str], warm_token: str, processes: int, budget: float
) -> Measured:
    name = "bare" if application == BARE_ASGI else "ours"
    ws_url = bench_stack.start_daphne(application)
    assert bench_stack.daphne is not None
    pid = bench_stack.daphne.pid
    warm, *clients = spawn_clients(bench_stack, processes + 1, name)
    try:
        open_from([warm], ws_url, [warm_token], 1, budget)
        time.sleep(1)
        before, cpu_before = procfs.rss_kib(pid), cpu_seconds(pid)
        reports = open_from(clients, ws_url, tokens, max(1, IN_FLIGHT // processes), budget)
        time.sleep(2)  # idle: let the server settle
        after, cpu = procfs.rss_kib(pid), cpu_seconds(pid) - cpu_before
    finally:
        bench_stack.stop_daphne()  # first, so the clients' sockets need no closing handshakes
        for talker in [warm, *clients]:
            talker.close()
            bench_stack.stop(talker.process)
    opened_at = sorted(t for r in reports for t in r["opened_at"])
    started = min(r["started"] for r in reports)
    return Measured(opened_at, sum(r["failed"] for r in reports), started, before, after, cpu)


def run(connections: int, processes: int, budget: float) -> list[Row]:
    raise_open_files_limit(connections + 200)
    with private_stack() as bench_stack:
        users = -(-connections // PER_USER)
        user_tokens = [make_user(f"bench{i}")[1] for i in range(users + 1)]
        tokens = [user_tokens[i // PER_USER] for i in range(connections)]
        bare = measure(bench_stack, BARE_ASGI, tokens, user_tokens[-1], processes, budget)
        ours = measure(bench_stack, OURS_ASGI, tokens, user_tokens[-1], processes, budget)
    return rows(f"4 idle connections ({connections:,})", connections, bare, ours)


def rows(name: str, connections: int, bare: Measured, ours: Measured) -> list[Row]:
    def mib(kib: int) -> str:
        return f"{kib / 1024:.0f} MiB"

    def cpu_per(measured: Measured) -> str:
        return f"{measured.cpu / max(measured.opened, 1) * 1000:.2f} ms"

    def quarters(measured: Measured) -> str:
        first, last = measured.quarter_rates()
        return f"{first:.0f} / {last:.0f} /s"

    return [
        Row(
            name,
            "Daphne RSS per connection (baseline: bare Channels app)",
            f"{bare.per_connection:.1f} KiB",
            f"{ours.per_connection:.1f} KiB",
            "<= 30 KB",
            ours.per_connection * 1024 <= 30_000,
        ),
        Row(
            name,
            "Daphne RSS, 1 socket -> all",
            f"{mib(bare.rss_before)} -> {mib(bare.rss_after)}",
            f"{mib(ours.rss_before)} -> {mib(ours.rss_after)}",
        ),
        Row(name, "connect rate (handshake + hello)", f"{bare.rate:.0f} /s", f"{ours.rate:.0f} /s"),
        Row(name, "connect rate, first / last quarter of the sockets", quarters(bare), quarters(ours)),
        Row(name, "Daphne CPU per connect", cpu_per(bare), cpu_per(ours)),
        Row(
            name,
            "opened / failed",
            f"{bare.opened} / {bare.failed}",
            f"{ours.opened} / {ours.failed}",
            f"{connections} / 0",
            ours.opened == connections and ours.failed == 0,
        ),
    ]


def main() -> None:
    if "--client" in sys.argv:
        client()
        return
    args_parser = parser(__doc__)
    args_parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    args_parser.add_argument("--processes", type=int, default=10, help="client processes the sockets are spread over")
    args_parser.add_argument(
        "--open-seconds", type=float, default=300, help="no handshake starts later than this, per server"
    )
    args = args_parser.parse_args()
    report(run(args.connections, args.processes, args.open_seconds), args.json)


if __name__ == "__main__":
    main()
