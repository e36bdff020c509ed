"""The soak's chaos driver and its measurements (bench.soak).

At seeded random intervals it does one of the faults below; the first ones
go through every fault once, in a seeded order, so even a short soak has each:

* pool: SIGKILL one pool process of a worker (Celery starts another; its task is redelivered).
* worker: SIGKILL a whole worker, pool included (the soak's supervisor starts it again).
* daphne-term / daphne-kill: SIGTERM (SIGKILL after 10 s, as `docker stop`) or SIGKILL Daphne 0, start
  it again on its port; measured: from the signal until each of its sockets has a new hello.
* redis-keep / redis-wipe: SIGKILL redis-server, start it 1-3 s later with its append-only file, or
  with its files deleted; measured: from the start until a new job completes end to end (the probe).
* postgres: pg_ctl stop (fast or immediate, seeded), start 1-3 s later; measured as Redis is.

The probe is a client of its own: it submits a one-step demo.countdown (one
request_id, sent again after every reconnect) and waits until a frame (an
event or a hello) shows it succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bench.harness import Talker
from bench.soak_stack import Postgres, Redis, Services

FAULTS = ("pool", "worker", "daphne-term", "daphne-kill", "redis-keep", "redis-wipe", "postgres")
CHAOS_DAPHNE = 0  # Daphne 1 is never broken: its memory over the whole run is measured
WAVE_DEADLINE = 120.0  # seconds after a Daphne fault by which every socket must have its hello again
PROBE_DEADLINE = 180.0
DOCKER_GRACE = 10.0


@dataclass
class Fault:
    name: str
    at: float  # time.time()
    detail: str = ""
    seconds: list[float] = field(default_factory=list)  # reconnect times (Daphne) or one recovery time
    failed: str = ""  # what did not come back in time


@dataclass
class Chaos:
    rng: random.Random
    services: Services
    redis: Redis
    postgres: Postgres
    clients: list[Talker]
    socket_daphne: dict[str, int]  # socket key -> the Daphne it connects to
    probe_token: str
    every: float  # mean seconds between faults
    allowed: tuple[str, ...] = FAULTS
    faults: list[Fault] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)  # the soak is ending early: measure nothing
    client_lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        """Until `stop` is set: wait, break something, measure its recovery."""
        order = list(self.allowed)
        self.rng.shuffle(order)
        while not self.stop.wait(self.rng.uniform(0.5, 1.5) * self.every):
            name = order.pop(0) if order else self.rng.choice(self.allowed)
            self.faults.append(self.do(name))
            fault = self.faults[-1]
            print(f"soak: {fault.name} at {fault.at:.2f} {fault.detail} {fault.failed}", file=sys.stderr, flush=True)

    def do(self, name: str) -> Fault:
        fault = Fault(name, time.time())
        actions: dict[str, Callable[[Fault], None]] = {
            "pool": self.kill_pool_process,
            "worker": self.kill_worker,
            "daphne-term": lambda f: self.break_daphne(f, signal.SIGTERM),
            "daphne-kill": lambda f: self.break_daphne(f, signal.SIGKILL),
            "redis-keep": lambda f: self.restart_redis(f, keep_data=True),
            "redis-wipe": lambda f: self.restart_redis(f, keep_data=False),
            "postgres": self.restart_postgres,
        }
        try:
            actions[name](fault)
        except Exception as exc:  # a fault that could not be done is reported, and the soak goes on
            fault.failed = f"{type(exc).__name__}: {exc}"
        return fault

    def kill_pool_process(self, fault: Fault) -> None:
        index = self.rng.randrange(len(self.services.workers))
        pids = self.services.pool_pids(index)
        if not pids:
            fault.detail = f"worker {index} had no pool process"
            return
        pid = self.rng.choice(sorted(pids))
        signal_pid(pid, signal.SIGKILL)
        fault.detail = f"worker {index}, pool pid {pid}"

    def kill_worker(self, fault: Fault) -> None:
        index = self.rng.randrange(len(self.services.workers))
        self.services.kill_worker(index)
        fault.detail = f"worker {index}"

    def break_daphne(self, fault: Fault, signum: signal.Signals) -> None:
        process = self.services.daphnes[CHAOS_DAPHNE]
        assert process is not None
        fault.at = time.time()
        process.send_signal(signum)
        try:
            process.wait(DOCKER_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            fault.detail = "SIGKILL after 10 s"
        self.services.start_daphne(CHAOS_DAPHNE)
        fault.seconds, missing = self.wave(fault.at)
        if missing:
            fault.failed = f"{missing} sockets had no hello {WAVE_DEADLINE:.0f} s after"

    def wave(self, since: float) -> tuple[list[float], int]:
        """Each socket of the broken Daphne: seconds from `since` to its new hello; how many had none."""
        keys = [key for key, daphne in self.socket_daphne.items() if daphne == CHAOS_DAPHNE]
        deadline = time.monotonic() + WAVE_DEADLINE
        while True:
            hello_at, up = self.status()
            back = {key: hello_at[key] - since for key in keys if hello_at[key] > since and up[key]}
            if len(back) == len(keys) or time.monotonic() > deadline or self.abort.is_set():
                return sorted(back.values()), len(keys) - len(back)
            time.sleep(0.2)

    def status(self) -> tuple[dict[str, float], dict[str, bool]]:
        hello_at: dict[str, float] = {}
        up: dict[str, bool] = {}
        with self.client_lock:
            for client in self.clients:
                client.send({"cmd": "status"})
                answer = client.receive(timeout=30)
                hello_at.update(answer["hello_at"])
                up.update(answer["up"])
        return hello_at, up

    def restart_redis(self, fault: Fault, keep_data: bool) -> None:
        self.redis.kill(keep_data)
        time.sleep(self.rng.uniform(1, 3))
        self.redis.start()
        self.probe(fault)

    def restart_postgres(self, fault: Fault) -> None:
        mode = self.rng.choice(["fast", "immediate"])
        fault.detail = f"stop -m {mode}"
        self.postgres.stop(mode)
        time.sleep(self.rng.uniform(1, 3))
        self.postgres.start()
        self.probe(fault)

    def probe(self, fault: Fault) -> None:
        started = time.time()
        url = self.services.ws_url(1 - CHAOS_DAPHNE)
        if asyncio.run(probe(url, self.probe_token, PROBE_DEADLINE, self.abort)):
            fault.seconds = [time.time() - started]
        else:
            fault.failed = f"no job completed within {PROBE_DEADLINE:.0f} s"


def signal_pid(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


async def probe(ws_url: str, token: str, deadline: float, abort: threading.Event | None = None) -> bool:
    """Submit a one-step countdown until some frame shows it succeeded; False after `deadline` seconds."""
    request_id = f"probe-{uuid.uuid4().hex}"
    frame = {"type": "job.submit", "request_id": request_id, "kind": "demo.countdown", "params": {"steps": 1}}
    job_id: str | None = None
    ends = time.monotonic() + deadline
    while time.monotonic() < ends and not (abort is not None and abort.is_set()):
        try:
            async with asyncio.timeout(min(15.0, max(0.1, ends - time.monotonic()))):
                async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
                    await socket.send(json.dumps(frame))
                    async for raw in socket:
                        job_id = job_id or accepted_id(json.loads(raw), request_id)
                        if job_id is not None and succeeded(json.loads(raw), job_id):
                            return True
        except (OSError, TimeoutError, WebSocketException):
            pass
        await asyncio.sleep(0.3)
    return False


def accepted_id(message: dict[str, Any], request_id: str) -> str | None:
    if message.get("type") == "job.accepted" and message.get("request_id") == request_id:
        return str(message["job"]["id"])
    return None


def succeeded(message: dict[str, Any], job_id: str) -> bool:
    jobs = message.get("jobs", []) if message.get("type") == "hello" else [message.get("job") or {}]
    return any(job.get("id") == job_id and job.get("status") == "succeeded" for job in jobs)
