"""A client process of the soak (bench.soak): many users' sockets, their load, their views of the jobs.

The parent sends one JSON line with the plan, then commands, each answered by
one line (bench.harness.Talker): `status` (when each socket last had its hello,
and whether it is up), `stop_load` (no new work; waits for the submissions still
unacknowledged), `views` (every socket's view as it stands), `final` (every socket
closes, reconnects once, merges that hello; then every socket's view and the
submission counts).

Each socket behaves as the protocol asks of a client: it merges hello
snapshots and events by `seq`, reconnects by itself with backoff and jitter
after any close, and drops itself now and then (a flaky network). Each user
submits through whichever of its sockets is up; a submission not yet answered
with `job.accepted` is sent again, with the same `request_id`, after every
reconnect (submitting is idempotent per request_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.harness import child_lines, child_say

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
BACKOFF_BASE, BACKOFF_CAP, BACKOFF_MIN = 0.25, 2.0, 0.1
HELLO_TIMEOUT = 10.0
# Errors after which a client sends the same submission again (a while later): it may succeed then.
AGAIN = frozenset({"rate_limited", "internal"})
RESEND_AFTER = 3.0  # seconds without an answer (or after an error of AGAIN) before sending a submission again
MEAN_LIFE = 90.0  # seconds a socket lives, on average, before it drops itself


@dataclass
class Socket:
    key: str
    url: str
    token: str
    view: dict[str, tuple[int, str]] = field(default_factory=dict)  # job id -> (highest seq, status)
    ws: ClientConnection | None = None
    hello_at: float = 0.0  # time.time() of its latest hello
    connects: int = 0
    drops: int = 0

    def apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        if kind == "hello":
            for job in message["jobs"]:
                self._merge(job["id"], job["seq"], job["status"])
        elif kind == "job.progress" and "parent_id" not in message:
            self._merge(message["job_id"], message["seq"], None)
        elif kind.startswith("job.") and isinstance(message.get("job"), dict):
            job = message["job"]
            if job.get("parent_id") is None:  # a batch's children are not followed, so not in the hello
                self._merge(job["id"], job["seq"], job["status"])

    def _merge(self, job_id: str, seq: int, status: str | None) -> None:
        known = self.view.get(job_id)
        if known is not None and seq <= known[0]:
            return
        self.view[job_id] = (seq, status or (known[1] if known else "running"))


@dataclass
class User:
    name: str
    sockets: list[Socket]
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # request_id -> frame, not yet accepted
    submitted: set[str] = field(default_factory=set)
    sent_at: dict[str, float] = field(default_factory=dict)  # request_id -> time.monotonic() last sent
    accepted: dict[str, str] = field(default_factory=dict)  # request_id -> job id
    refused: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    emails: int = 0
    scheduling: bool = False  # has a schedule that submits a countdown every minute while the load runs
    schedule_id: str | None = None
    schedule_deleted: bool = False

    def live(self) -> list[ClientConnection]:
        return [s.ws for s in self.sockets if s.ws is not None]

    def on_frame(self, message: dict[str, Any]) -> None:
        request_id = message.get("request_id")
        if message.get("type") in ("schedule.created", "schedule.changed"):
            self.on_schedule(message)
        elif message.get("type") == "job.accepted" and request_id in self.pending:
            del self.pending[request_id]
            self.accepted[request_id] = message["job"]["id"]
        elif message.get("type") == "error" and request_id in self.pending and message.get("code") not in AGAIN:
            del self.pending[request_id]
            self.refused[message.get("code", "?")] += 1

    def on_schedule(self, message: dict[str, Any]) -> None:
        if message.get("request_id") == self.schedule_request_id:
            self.schedule_id = message["schedule"]["id"]
        if message.get("deleted") and message["schedule"]["id"] == self.schedule_id:
            self.schedule_deleted = True

    @property
    def schedule_request_id(self) -> str:
        return f"soak-schedule-{self.name}"

    async def ask_schedule(self, socket: ClientConnection, loading: bool) -> None:
        """Create the user's schedule while the load runs (idempotent by request_id), delete it once it stops."""
        if not self.scheduling or self.schedule_deleted or (loading and self.schedule_id is not None):
            return
        frame: dict[str, Any]
        if loading:
            params = {"steps": 2, "interval_ms": 100}
            frame = {"type": "schedule.create", "request_id": self.schedule_request_id, "kind": "demo.countdown"}
            frame.update(params=params, cron="* * * * *")
        elif self.schedule_id is not None:
            frame = {"type": "schedule.delete", "schedule_id": self.schedule_id}
        else:
            return
        with contextlib.suppress(ConnectionClosed):
            await socket.send(json.dumps(frame))

    async def resend(self, socket: ClientConnection, older_than: float = 0.0) -> None:
        """Send again the submissions not acknowledged, last sent more than `older_than` seconds ago."""
        now = time.monotonic()
        for request_id, frame in list(self.pending.items()):
            if now - self.sent_at.get(request_id, 0.0) >= older_than:
                self.sent_at[request_id] = now
                with contextlib.suppress(ConnectionClosed):
                    await socket.send(json.dumps(frame))


@dataclass
class Client:
    users: list[User]
    rate: float  # actions per second of each user
    dropping: bool = True  # sockets drop themselves now and then
    loading: bool = True


def plan_users(plan: dict[str, Any]) -> list[User]:
    users = []
    for spec in plan["users"]:
        sockets = [
            Socket(f"{spec['name']}/{i}", plan["ws_urls"][daphne], spec["token"])
            for i, daphne in enumerate(spec["daphnes"])
        ]
        users.append(User(spec["name"], sockets, scheduling=spec.get("schedule", False)))
    return users


async def keep(user: User, socket: Socket, client: Client) -> None:
    """Stay connected: connect, read the hello, merge, resend what is unacknowledged, read until closed."""
    attempt = 0
    while True:
        try:
            async with connect(
                socket.url,
                additional_headers={"Authorization": f"Bearer {socket.token}"},
                open_timeout=HELLO_TIMEOUT,
                close_timeout=2,
                max_queue=None,
            ) as ws:
                hello = json.loads(await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT))
                if hello.get("type") != "hello":
                    raise ConnectionError(f"first frame {hello.get('type')}")
                socket.apply(hello)
                socket.hello_at, socket.ws, attempt = time.time(), ws, 0
                socket.connects += 1
                await user.resend(ws)
                await user.ask_schedule(ws, client.loading)
                await read(user, socket, ws, client)
        except (OSError, TimeoutError, WebSocketException, ConnectionError, json.JSONDecodeError):
            pass
        socket.ws = None
        await asyncio.sleep(max(BACKOFF_MIN, random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))))
        attempt += 1


async def read(user: User, socket: Socket, ws: ClientConnection, client: Client) -> None:
    life = random.expovariate(1 / MEAN_LIFE) if client.dropping else None
    try:
        async with asyncio.timeout(life):
            async for frame in ws:
                message = json.loads(frame)
                socket.apply(message)
                user.on_frame(message)
    except TimeoutError:
        socket.drops += 1  # its life is over: drop it, as a flaky network would (no closing handshake)
        ws.transport.abort()


# --- the load --------------------------------------------------------------------------------------


def countdown_params() -> dict[str, Any]:
    steps = random.randint(3, 15)
    params: dict[str, Any] = {"steps": steps, "interval_ms": random.randint(100, 300)}
    if random.random() < 0.15:
        params["fail_at"] = random.randint(1, steps)
    return params


def next_action(user: User) -> tuple[str, dict[str, Any]]:
    """What the user does next, and its frame (a new submission is recorded as pending)."""
    roll = random.random()
    if roll < 0.45:
        return submit(user, {"type": "job.submit", "kind": "demo.countdown", "params": countdown_params()})
    if roll < 0.70:
        user.emails += 1
        to = [f"{user.name}.{user.emails}.{i}@soak.test" for i in range(random.randint(2, 4))]
        params = {"to": to, "subject": f"soak {user.name} {user.emails}", "body": "Sent by bench.soak."}
        return submit(user, {"type": "job.submit", "kind": "email.send", "params": params})
    if roll < 0.76:
        jobs = [{"kind": "demo.countdown", "params": {"steps": 3, "interval_ms": 100}} for _ in range(3)]
        return submit(user, {"type": "batch.submit", "mode": random.choice(["parallel", "sequence"]), "jobs": jobs})
    return change(user, "job.cancel" if roll < 0.88 else "job.retry")


def submit(user: User, frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request_id = uuid.uuid4().hex
    frame = {**frame, "request_id": request_id}
    user.pending[request_id] = frame
    user.submitted.add(request_id)
    return frame["type"], frame


def change(user: User, kind: str) -> tuple[str, dict[str, Any]]:
    """A cancel of a job the user's view shows unfinished, or a retry of one it shows failed or cancelled."""
    wanted = {"queued", "running"} if kind == "job.cancel" else {"failed", "cancelled"}
    view = user.sockets[0].view
    candidates = [job_id for job_id, (_, status) in view.items() if status in wanted]
    if not candidates:
        return "none", {}
    return kind, {"type": kind, "job_id": random.choice(candidates)}


async def load(user: User, client: Client) -> None:
    while client.loading:
        await asyncio.sleep(random.expovariate(client.rate))
        live = user.live()
        if not client.loading or not live:
            continue
        kind, frame = next_action(user)
        user.actions[kind] += 1
        if frame:
            user.sent_at[frame.get("request_id", "")] = time.monotonic()
            with contextlib.suppress(ConnectionClosed):
                await random.choice(live).send(json.dumps(frame))


async def resend(user: User, client: Client) -> None:
    """Send again what stays unacknowledged on a live socket (an error of AGAIN, or an answer lost)."""
    while True:
        await asyncio.sleep(RESEND_AFTER)
        live = user.live()
        if live and user.pending:
            await user.resend(random.choice(live), older_than=RESEND_AFTER)
        if live:
            await user.ask_schedule(random.choice(live), client.loading)


# --- commands from the parent ----------------------------------------------------------------------


def status(client: Client) -> dict[str, Any]:
    sockets = [s for u in client.users for s in u.sockets]
    return {"hello_at": {s.key: s.hello_at for s in sockets}, "up": {s.key: s.ws is not None for s in sockets}}


async def until(condition: Callable[[], bool], within: float) -> None:
    """Poll `condition` (state that every socket's task changes) until it holds or `within` seconds pass."""
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def stop_load(client: Client, within: float) -> dict[str, Any]:
    client.loading = False
    users = client.users
    await until(lambda: not any(u.pending or (u.scheduling and not u.schedule_deleted) for u in users), within)
    return {
        "pending": sum(len(u.pending) for u in users),
        "schedules_left": sum(1 for u in users if u.scheduling and not u.schedule_deleted),
    }


def views(client: Client) -> dict[str, Any]:
    """Every socket's view as it stands, and whether the socket is up (it holds everything sent since its hello)."""
    sockets = [s for u in client.users for s in u.sockets]
    return {
        "views": {s.key: {job: list(seen) for job, seen in s.view.items()} for s in sockets},
        "up": [s.key for s in sockets if s.ws is not None],
    }


async def final(client: Client, within: float) -> dict[str, Any]:
    """Every socket reconnects once more (its loop does, after this close) and merges that hello."""
    client.dropping = False
    asked = time.time()
    for socket in (s for u in client.users for s in u.sockets):
        if socket.ws is not None:
            await socket.ws.close()
    sockets = [s for u in client.users for s in u.sockets]
    await until(lambda: all(s.hello_at > asked and s.ws is not None for s in sockets), within)
    return {
        "views": {s.key: {job: list(seen) for job, seen in s.view.items()} for s in sockets},
        "not_back": [s.key for s in sockets if s.hello_at <= asked or s.ws is None],
        "submitted": sum(len(u.submitted) for u in client.users),
        "accepted": sum(len(u.accepted) for u in client.users),
        "accepted_ids": [job for u in client.users for job in u.accepted.values()],
        "refused": sum((u.refused for u in client.users), Counter()),
        "actions": sum((u.actions for u in client.users), Counter()),
        "connects": sum(s.connects for s in sockets),
        "drops": sum(s.drops for s in sockets),
    }


async def serve(plan: dict[str, Any], lines: Iterator[Any]) -> None:
    random.seed(plan["seed"])
    client = Client(plan_users(plan), plan["rate"])
    tasks = [asyncio.create_task(keep(u, s, client)) for u in client.users for s in u.sockets]
    tasks += [asyncio.create_task(load(u, client)) for u in client.users]
    tasks += [asyncio.create_task(resend(u, client)) for u in client.users]
    child_say({"up": True})
    while (command := await asyncio.to_thread(next, lines, None)) is not None:
        if command["cmd"] == "status":
            child_say(status(client))
        elif command["cmd"] == "stop_load":
            child_say(await stop_load(client, command["timeout"]))
        elif command["cmd"] == "views":
            child_say(views(client))
        elif command["cmd"] == "final":
            child_say(await final(client, command["timeout"]))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    lines = child_lines()
    asyncio.run(serve(next(lines), lines))


if __name__ == "__main__":
    main()
