"""`jobsctl batch`: a batch file read and checked, sent as batch.submit, in parts when one frame cannot hold it.

A frame holds at most 64 KiB (the server closes the socket with 4009 past it).
A batch that fits goes in one plain batch.submit. A larger one goes in parts
with the same request_id (docs/protocol.md, "a batch in parts"):

1. each part carries as many jobs as fit, and `offset`, how many jobs came
   before it: 0, then the `received` of the server's `batch.part` answer;
2. every part but the last carries `"continues": true`, and the next part is
   sent only once its answer came;
3. the last part is answered `job.accepted` (or one `error`): only then does
   the server create the batch, all of it in one transaction.

A dropped connection drops the parts the server received, so after a reconnect
the batch is sent again from offset 0; the request_id makes that safe.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobsctl.errors import CliError, Interrupted, server_error
from jobsctl.jobs import Tracker
from jobsctl.session import INTERRUPT, MAX_FRAME_BYTES, RESYNC, Message, Session, encode

MODES = ("parallel", "sequence")
JOB_KEYS = frozenset({"kind", "params"})
FILE_KEYS = frozenset({"title", "mode", "jobs"})
LISTED_AT_MOST = 20  # the server names at most this many bad jobs


@dataclass(frozen=True)
class Batch:
    jobs: list[Message]  # each {"kind": …, "params": {…}}
    title: str = ""
    mode: str = "parallel"
    priority: str = "normal"


def load(path: str, title: str | None = None, mode: str | None = None) -> Batch:
    """The batch in FILE (`-`: stdin); --title and --mode override the file's."""
    source = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"Cannot read the batch file {source}: {exc}", "usage") from None
    return parse(text, source, title, mode)


def parse(text: str, source: str = "the batch file", title: str | None = None, mode: str | None = None) -> Batch:
    """A list of {"kind", "params"}, or {"title", "mode", "jobs": [...]}; each job checked for its shape."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{source} is not JSON: {exc}", "usage") from None
    if isinstance(value, list):
        value = {"jobs": value}
    if not isinstance(value, dict):
        raise CliError(f'{source} must hold a list of jobs, or an object with a list in "jobs".', "usage")
    problems = _file_problems(value)
    if isinstance(value.get("jobs"), list):
        for index, job in enumerate(value["jobs"]):
            problems.update(_job_problems(index, job))
    if problems:
        raise CliError(f"{source} is not a batch.", "usage", problems)
    batch = Batch(
        jobs=[{"kind": job["kind"], "params": job.get("params", {})} for job in value["jobs"]],
        title=title if title is not None else value.get("title", ""),
        mode=mode if mode is not None else value.get("mode", "parallel"),
    )
    _check_sizes(batch)
    return batch


def _file_problems(value: dict[str, Any]) -> dict[str, str]:
    problems = {key: "Not a field of a batch: give title, mode and jobs." for key in value.keys() - FILE_KEYS}
    if not isinstance(value.get("jobs"), list):
        problems["jobs"] = 'Give a list of jobs, each {"kind": …, "params": {…}}.'
    elif not value["jobs"]:
        problems["jobs"] = "The batch holds no jobs."
    if not isinstance(value.get("title", ""), str):
        problems["title"] = "Give a text."
    if value.get("mode", "parallel") not in MODES:
        problems["mode"] = "Give parallel or sequence."
    return problems


def _job_problems(index: int, job: Any) -> dict[str, str]:
    where = f"jobs.{index}"
    if not isinstance(job, dict):
        return {where: 'Give an object {"kind": …, "params": {…}}.'}
    problems = {f"{where}.{key}": "Not a field of a job: give kind and params." for key in job.keys() - JOB_KEYS}
    if not isinstance(job.get("kind"), str) or not job["kind"]:
        problems[f"{where}.kind"] = "Give the kind's name, e.g. demo.countdown."
    if not isinstance(job.get("params", {}), dict):
        problems[f"{where}.params"] = "Give an object."
    return problems


def _check_sizes(batch: Batch) -> None:
    """A job that a frame cannot hold, even alone, could never be sent: say so before connecting."""
    room = _room(batch, "0" * 32, len(batch.jobs))
    for index, job in enumerate(batch.jobs):
        size = frame_bytes(job)
        if size > room:
            text = f"jobs.{index} is {size:,} bytes as JSON; a frame holds at most {MAX_FRAME_BYTES:,} bytes in all."
            raise CliError(text, "usage")


def frame_bytes(value: Any) -> int:
    """Its size as the session sends it (session.encode), in UTF-8 bytes, as the server measures frames."""
    return len(encode(value).encode())


def _base(batch: Batch, request_id: str) -> Message:
    base = {"type": "batch.submit", "request_id": request_id, "title": batch.title, "mode": batch.mode}
    return {**base, "priority": batch.priority} if batch.priority != "normal" else base


def _room(batch: Batch, request_id: str, offset: int) -> int:
    """The bytes left for the jobs in a part: the frame less the rest of the message at its largest."""
    envelope = {**_base(batch, request_id), "jobs": [], "offset": max(offset, len(batch.jobs)), "continues": True}
    return MAX_FRAME_BYTES - frame_bytes(envelope)


def part(batch: Batch, request_id: str, offset: int) -> Message:
    """The batch.submit from job `offset` on, with as many jobs as one frame holds.

    The whole batch in one frame is a plain batch.submit; otherwise a part with
    `offset`, and `continues` unless it holds the last job. Jobs are joined by ", "
    in the list (json.dumps), which the count includes.
    """
    room, end, used = _room(batch, request_id, offset), offset, 0
    while end < len(batch.jobs):
        size = frame_bytes(batch.jobs[end]) + (2 if end > offset else 0)
        if used + size > room:
            break
        used, end = used + size, end + 1
    if end == offset:
        raise CliError(f"jobs.{offset} alone does not fit in a frame of {MAX_FRAME_BYTES:,} bytes.", "usage")
    message = {**_base(batch, request_id), "jobs": batch.jobs[offset:end]}
    if offset == 0 and end == len(batch.jobs):
        return message
    message["offset"] = offset
    if end < len(batch.jobs):
        message["continues"] = True
    return message


class Pace:
    """Parts go out as fast as they are answered, until the server says `rate_limited`: then slower."""

    def __init__(self) -> None:
        self.gap = 0.0
        self._last = 0.0

    async def wait(self) -> None:
        delay = self._last + self.gap - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last = time.monotonic()

    async def limited(self, retry_after: float) -> None:
        self.gap = min(max(self.gap * 2, 0.1), 1.0)
        await asyncio.sleep(retry_after)


class Sender:
    """One batch.submit conversation: the part in flight, and how many parts went out."""

    def __init__(self, session: Session, batch: Batch, request_id: str) -> None:
        self.session, self.batch, self.request_id = session, batch, request_id
        self.pace = Pace()
        self.message: Message = {}
        self.parts = 0

    async def send_from(self, offset: int) -> None:
        """The part that starts at job `offset` (0: the batch from the start, as after a reconnect)."""
        self.parts = 1 if offset == 0 else self.parts + 1
        self.message = part(self.batch, self.request_id, offset)
        await self._send()

    async def _send(self) -> None:
        await self.pace.wait()
        await self.session.send(self.message)

    async def answered(self, reply: Message) -> Tracker | None:
        """The answer to the part in flight: the next part sent, the batch accepted, or its error raised."""
        if reply["type"] == "job.accepted":
            return Tracker(reply["job"])
        if reply["type"] == "batch.part":
            await self.send_from(self._next_offset(reply))
        elif reply["type"] == "error" and reply.get("code") == "rate_limited" and self.message.get("offset"):
            # A later part met the connection's message rate: the parts so far are kept; send this one again.
            await self.pace.limited(float((reply.get("details") or {}).get("retry_after", 1.0)))
            await self._send()
        elif reply["type"] == "error":
            raise batch_error(reply, self.batch)
        return None

    def _next_offset(self, reply: Message) -> int:
        received = reply.get("received")
        sent_up_to = int(self.message.get("offset", 0)) + len(self.message["jobs"])
        if not isinstance(received, int) or not int(self.message.get("offset", 0)) < received < len(self.batch.jobs):
            raise CliError(f"The server's batch.part said received={received!r} after {sent_up_to} jobs were sent.")
        return received


async def submit(session: Session, batch: Batch, request_id: str) -> tuple[Tracker, int]:
    """batch.submit (in parts if need be) until job.accepted: the batch's tracker, and how many parts were sent."""
    sender = Sender(session, batch, request_id)
    await sender.send_from(0)
    early: list[Message] = []  # the batch's events can overtake job.accepted
    while True:
        message = await session.next()
        if message.get("request_id") == request_id and message["type"] in ("job.accepted", "batch.part", "error"):
            tracker = await sender.answered(message)
            if tracker is not None:
                for event in early:
                    tracker.apply(event)
                return tracker, sender.parts
        elif message["type"] == RESYNC:
            await sender.send_from(0)  # the server dropped the parts it had with the connection
        elif message["type"] == INTERRUPT:
            raise Interrupted("Interrupted before the server answered; `jobsctl list` shows whether the batch started.")
        else:
            early.append(message)


def batch_error(reply: Message, batch: Batch) -> CliError:
    """The server's error; for invalid_params, each bad job's field in order, with the job's kind."""
    error = server_error(reply)
    if error.code != "invalid_params" or not error.details:
        return error
    details = {}
    for field in sorted(error.details, key=_job_order):
        index = _job_index(field)
        kind = f" [{batch.jobs[index]['kind']}]" if index is not None and index < len(batch.jobs) else ""
        details[f"{field}{kind}"] = error.details[field]
    if sum(1 for field in error.details if _job_index(field) is not None) >= LISTED_AT_MOST:
        details["…"] = f"the server lists at most {LISTED_AT_MOST} problems; fix these and submit again."
    return CliError(error.message, error.code, details)


def _job_index(field: str) -> int | None:
    head, _, rest = field.partition(".")
    number = rest.split(".", 1)[0]
    return int(number) if head == "jobs" and number.isdigit() else None


def _job_order(field: str) -> tuple[int, str]:
    index = _job_index(field)
    return (-1 if index is None else index, field)
