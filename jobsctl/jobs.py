"""The protocol conversations: submit, follow, cancel, retry; and merging job states by `seq`."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from typing import Any

from jobsctl.display import Display, noun, print_log_lines
from jobsctl.errors import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    CliError,
    Interrupted,
    server_error,
)
from jobsctl.session import INTERRUPT, RESYNC, Message, Session

Job = dict[str, Any]
FULL_EVENTS = frozenset({"job.queued", "job.started", "job.succeeded", "job.failed", "job.cancelled"})
EXIT_BY_STATUS = {"succeeded": EXIT_SUCCEEDED, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


class Tracker:
    """One job's latest known state. Events and snapshots apply only with a higher `seq` (protocol: merge by seq)."""

    def __init__(self, job: Job) -> None:
        self.job = job

    @property
    def id(self) -> str:
        return str(self.job["id"])

    @property
    def finished(self) -> bool:
        return self.job["status"] in EXIT_BY_STATUS

    def apply(self, message: Message) -> bool:
        """Apply an event if it is this job's and newer; True when the state changed."""
        if message["type"] == "job.progress" and message.get("job_id") == self.id:
            fields = {"progress": message["progress"], "eta_seconds": message.get("eta_seconds")}
            if "batch" in message:  # a batch's progress carries its counts
                fields["batch"] = message["batch"]
            return self._merge(int(message["seq"]), {**self.job, **fields})
        job = message.get("job")
        if message["type"] in FULL_EVENTS and isinstance(job, dict) and job.get("id") == self.id:
            return self._merge(int(job["seq"]), job)
        return False

    def apply_snapshot(self, hello: Message) -> bool:
        job = find(hello, self.id)
        if job is None:
            raise CliError(f"Job {self.id} is no longer in the server's snapshot.", "not_found")
        return self._merge(int(job["seq"]), job)

    def _merge(self, seq: int, job: Job) -> bool:
        if seq <= int(self.job["seq"]):
            return False
        self.job = {**job, "seq": seq}
        return True


class Interrupts:
    """Ctrl-C: answers a pending question with "no", else tells the session (and so the command)."""

    def __init__(self, session: Session, display: Display) -> None:
        self.session = session
        self.display = display
        self._answer: asyncio.Future[bool] | None = None

    def fire(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(False)  # a second Ctrl-C at the question: leave
        else:
            self.session.interrupt()

    async def ask(self, question: str) -> bool:
        """Ask on stderr, read a line from stdin in a daemon thread (one blocked in read() must not hold up exit)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._answer = answer

        def read() -> None:
            line = sys.stdin.readline()
            loop.call_soon_threadsafe(_settle, answer, line.strip().lower() in ("y", "yes"))

        self.display.prompt(question)
        threading.Thread(target=read, name="jobsctl-prompt", daemon=True).start()
        try:
            return await answer
        finally:
            self._answer = None


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def find(hello: Message, job_id: str) -> Job | None:
    return next((job for job in hello.get("jobs", []) if job.get("id") == job_id), None)


async def resolve(session: Session, text: str) -> str:
    """A full job id, or the one job whose id starts with `text` (ids are long to type).

    The snapshot first (no round trip); then the whole history, whose search matches ids.
    """
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    prefix = text.lower()
    matches = {str(job["id"]) for job in session.hello.get("jobs", []) if str(job.get("id", "")).startswith(prefix)}
    if not matches and len(prefix) >= MIN_PREFIX:
        found = await listing(session, {"search": prefix}, PREFIX_MATCHES)
        matches = {str(job["id"]) for job in found if str(job["id"]).startswith(prefix)}
    if len(matches) == 1:
        return matches.pop()
    if matches:
        raise CliError(f"{len(matches)} of your jobs have an id starting with {text!r}; give more of it.", "ambiguous")
    raise CliError(f"None of your jobs has an id starting with {text!r}.", "not_found")


MIN_PREFIX = 4  # shorter ones match too much of a long history to be meant
PREFIX_MATCHES = 100


async def get(session: Session, job_id: str) -> Job:
    """One job of the user's whole history, as it is now (job.get)."""
    detail = await request(session, {"type": "job.get", "job_id": job_id})
    job: Job = detail["job"]
    return job


async def submit(
    session: Session, kind: str, params: dict[str, Any], request_id: str, priority: str = "normal"
) -> Tracker:
    """job.submit until job.accepted; resent after a reconnect (the request_id makes that safe)."""
    request = {"type": "job.submit", "request_id": request_id, "kind": kind, "params": params}
    if priority != "normal":  # the default: a server older than priorities never sees the field
        request["priority"] = priority
    await session.send(request)
    early: list[Message] = []  # the job's events can overtake job.accepted
    while True:
        message = await session.next()
        if message["type"] == "job.accepted" and message.get("request_id") == request_id:
            tracker = Tracker(message["job"])
            for event in early:
                tracker.apply(event)
            return tracker
        if message["type"] == "error" and message.get("request_id") == request_id:
            raise server_error(message)
        if message["type"] == RESYNC:
            await session.send(request)
        elif message["type"] == INTERRUPT:
            raise Interrupted(f"Interrupted before the server answered; `jobsctl list` shows whether {kind} started.")
        else:
            early.append(message)


async def follow(session: Session, tracker: Tracker, display: Display, interrupts: Interrupts) -> int:
    """Show the job's progress until it finishes; the exit code of its final status."""
    display.update(tracker.job)
    cancelling = False
    while not tracker.finished:
        message = await session.next()
        if message["type"] == INTERRUPT:
            cancelling = await _interrupted(session, tracker, interrupts) or cancelling
            continue
        if message["type"] == RESYNC:
            changed = tracker.apply_snapshot(message["hello"])
            if cancelling and not tracker.finished:  # the cancel may have been lost with the connection
                await session.send({"type": "job.cancel", "job_id": tracker.id})
        elif message["type"] == "error" and message.get("request_id") is None:
            # Our job.cancel lost a race with the job's end (conflict): its final event follows.
            display.note(f"could not cancel: {message.get('code')}: {message.get('message')}")
            continue
        else:
            changed = tracker.apply(message)
        if changed:
            display.update(tracker.job)
    return EXIT_BY_STATUS[tracker.job["status"]]


async def _interrupted(session: Session, tracker: Tracker, interrupts: Interrupts) -> bool:
    """Ask whether to cancel; True once a job.cancel is sent, Interrupted (exit 130) when the answer is no."""
    what = noun(tracker.job)
    if not await interrupts.ask(f"\nCancel {what} {tracker.id}? [y/N] "):
        raise Interrupted(f"Stopped following {what} {tracker.id}; it goes on. `jobsctl show {tracker.id}` tells how.")
    interrupts.display.note(f"cancelling {what} {tracker.id}")
    await session.send({"type": "job.cancel", "job_id": tracker.id})
    return True


async def cancel(session: Session, job_id: str) -> Job:
    """job.cancel until the job's job.cancelled event (or an error)."""
    await session.send({"type": "job.cancel", "job_id": job_id})
    while True:
        message = await session.next()
        job = message.get("job")
        if message["type"] == "job.cancelled" and isinstance(job, dict) and job.get("id") == job_id:
            return job
        if message["type"] == "error" and message.get("request_id") is None:
            raise server_error(message)
        if message["type"] == INTERRUPT:
            raise Interrupted("Interrupted; the cancel may or may not have reached the server.")
        if message["type"] == RESYNC:
            known = find(message["hello"], job_id)
            if known is not None and known["status"] == "cancelled":
                return known
            await session.send({"type": "job.cancel", "job_id": job_id})


async def retry(session: Session, job_id: str, resend_unknown: bool = False) -> Tracker:
    """job.retry until the job is queued again as a new attempt; `resend_unknown` (docs/protocol.md) also
    sends again to the email recipients whose outcome is unknown."""
    before = find(session.hello, job_id)
    attempt = int(before["attempt"]) if before is not None else 0
    asked: Message = {"type": "job.retry", "job_id": job_id}
    if resend_unknown:  # only then: a server older than the flag never sees it
        asked["resend_unknown"] = True
    await session.send(asked)
    while True:
        message = await session.next()
        job = message.get("job")
        if message["type"] == "job.queued" and isinstance(job, dict) and job.get("id") == job_id:
            if int(job["attempt"]) > attempt:
                return Tracker(job)
        elif message["type"] == "error" and message.get("request_id") is None:
            raise server_error(message)
        elif message["type"] == INTERRUPT:
            raise Interrupted("Interrupted; the retry may or may not have reached the server.")
        elif message["type"] == RESYNC:
            known = find(message["hello"], job_id)
            if known is not None and int(known["attempt"]) > attempt:
                return Tracker(known)
            await session.send(asked)


async def request(session: Session, message: Message) -> Message:
    """Send a message with a fresh request_id; its reply (resent after a reconnect), or its error raised."""
    request_id = uuid.uuid4().hex
    message = {**message, "request_id": request_id}
    await session.send(message)
    while True:
        reply = await session.next()
        if reply.get("request_id") == request_id:
            if reply["type"] == "error":
                raise server_error(reply)
            return reply
        if reply["type"] == RESYNC:
            await session.send(message)
        elif reply["type"] == INTERRUPT:
            raise Interrupted("Interrupted before the server answered.")


async def kind_list(session: Session) -> dict[str, Message]:
    """The server's kinds (protocol 1.1 kind.list), by name."""
    reply = await request(session, {"type": "kind.list"})
    return {kind["name"]: kind for kind in reply.get("kinds", [])}


async def listing(session: Session, wanted: Message, limit: int) -> list[Job]:
    """Up to `limit` jobs passing the filter, newest first, page after page (job.list)."""
    found: list[Job] = []
    cursor = None
    while len(found) < limit:
        message: Message = {"type": "job.list", "filter": wanted, "limit": min(100, limit - len(found))}
        if cursor:
            message["cursor"] = cursor
        page = await request(session, message)
        found += page["jobs"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return found


async def follow_logs(session: Session, job_id: str, printed: int) -> None:
    """Print the job's new log lines (job.logs.follow) until it finishes; `printed`: the last n already shown."""
    reply = await request(session, {"type": "job.logs.follow", "job_id": job_id})
    printed = print_log_lines(reply.get("lines", []), printed)
    while True:
        message = await session.next()
        if message["type"] == "job.log" and message.get("job_id") == job_id:
            printed = print_log_lines(message["lines"], printed)
        elif message["type"] in FULL_EVENTS - {"job.queued", "job.started"} and message["job"]["id"] == job_id:
            return
        elif message["type"] == INTERRUPT:
            raise Interrupted("Stopped following the log; the job goes on.")
        elif message["type"] == RESYNC:
            reply = await request(session, {"type": "job.logs.follow", "job_id": job_id})
            printed = print_log_lines(reply.get("lines", []), printed)
