"""A batch too large for one 64 KiB frame is sent in parts (docs/protocol.md, "a batch in parts"): each
frame fits, the offsets follow on from each answer, every job goes once and in order, and the next part
waits for the answer to the one before."""

from __future__ import annotations

import json

import pytest

from jobsctl import batches
from jobsctl.batches import Batch, part
from jobsctl.errors import CliError
from jobsctl.jobs import Tracker
from jobsctl.session import INTERRUPT, MAX_FRAME_BYTES, RESYNC, Config, Message, Session, encode

REQUEST_ID = "0123456789abcdef0123456789abcdef"


def countdowns(n: int) -> list[Message]:
    return [{"kind": "demo.countdown", "params": {"steps": 1 + i % 100, "interval_ms": i}} for i in range(n)]


def emails(n: int) -> list[Message]:
    """Jobs of uneven sizes, with text that JSON escapes (é is 6 bytes as \\u00e9, 😀 twelve)."""
    return [
        {
            "kind": "email.send",
            "params": {"to": [f"p{i}@example.com"], "subject": "Résumé 😀", "body": "é" * (i * 37 % 9000)},
        }
        for i in range(n)
    ]


def frame_size(message: Message) -> int:
    return len(encode(message).encode("utf-8"))


def all_parts(batch: Batch) -> list[Message]:
    """Every part, each from where the server says the one before ended (its `received`)."""
    parts = [part(batch, REQUEST_ID, 0)]
    while parts[-1].get("continues"):
        received = parts[-1]["offset"] + len(parts[-1]["jobs"])
        parts.append(part(batch, REQUEST_ID, received))
    return parts


def test_a_batch_that_fits_goes_in_one_plain_frame() -> None:
    batch = Batch(countdowns(100), "Small", "parallel")
    (only,) = all_parts(batch)
    assert only == {"type": "batch.submit", "request_id": REQUEST_ID, "title": "Small", "mode": "parallel",
                    "jobs": batch.jobs}  # fmt: skip


@pytest.mark.parametrize("jobs", [countdowns(10_000), emails(400)], ids=["countdowns", "uneven-escaped"])
def test_each_part_fits_in_a_frame_and_together_they_carry_every_job_once_in_order(jobs: list[Message]) -> None:
    batch = Batch(jobs, "Über-batch ✓", "parallel")
    parts = all_parts(batch)
    assert len(parts) > 2
    assert all(frame_size(each) <= MAX_FRAME_BYTES for each in parts)
    assert [each["offset"] for each in parts] == [sum(len(p["jobs"]) for p in parts[:n]) for n in range(len(parts))]
    assert [each.get("continues", False) for each in parts] == [True] * (len(parts) - 1) + [False]
    assert [job for each in parts for job in each["jobs"]] == jobs
    assert {(each["title"], each["mode"], each["request_id"]) for each in parts} == {
        ("Über-batch ✓", "parallel", REQUEST_ID)
    }
    for each in parts[:-1]:  # full: the next job would not have fitted
        end = each["offset"] + len(each["jobs"])
        assert frame_size({**each, "jobs": [*each["jobs"], jobs[end]]}) > MAX_FRAME_BYTES


class Server(Session):
    """A Session whose other end is a script of the server's part in batch.submit (gateway/consumers.py)."""

    def __init__(self, rate_limit_at: set[int] | None = None, drop_at: int | None = None) -> None:
        super().__init__(Config("http://127.0.0.1:1", "token"))
        self.frames: list[Message] = []
        self.received: list[Message] = []  # the jobs of the batch so far
        self.pending = False  # a part was sent and its answer not yet read
        self.rate_limit_at = rate_limit_at or set()
        self.drop_at = drop_at

    async def send(self, message: Message) -> None:
        assert not self.pending, "a part was sent before the answer to the one before"
        assert frame_size(message) <= MAX_FRAME_BYTES
        self.frames.append(message)
        self.pending = True
        offset = message.get("offset", 0)
        if len(self.frames) in self.rate_limit_at:
            self.answer({"type": "error", "code": "rate_limited", "details": {"retry_after": 0.01}})
            return
        if len(self.frames) == self.drop_at:  # the connection drops: the server forgets the parts
            self.received = []
            self.answer({"type": RESYNC, "hello": {"type": "hello", "jobs": []}})
            return
        assert offset == len(self.received), f"offset {offset} after {len(self.received)} jobs"
        self.received += message["jobs"]
        if message.get("continues"):
            self.answer({"type": "batch.part", "received": len(self.received)})
        else:
            total = len(self.received)
            counts = {"total": total, "queued": total, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
            self.answer({"type": "job.accepted", "job": {"id": "b1", "kind": "batch", "seq": 1, "batch": counts}})

    def answer(self, reply: Message) -> None:
        if reply["type"] != RESYNC:
            reply["request_id"] = REQUEST_ID
        self.queue.put_nowait({"type": "notification.created", "unread": 1})  # traffic that is not the answer
        self.queue.put_nowait(reply)

    async def next(self) -> Message:
        message = await super().next()
        if message.get("request_id") == REQUEST_ID or message["type"] == RESYNC:
            self.pending = False
        return message


async def submit(server: Server, batch: Batch) -> tuple[Tracker, int]:
    return await batches.submit(server, batch, REQUEST_ID)


async def test_the_parts_go_one_at_a_time_from_each_answer_and_the_batch_is_accepted_whole() -> None:
    server, jobs = Server(), countdowns(3000)
    tracker, parts = await submit(server, Batch(jobs))
    assert parts == len(server.frames) > 2
    assert server.received == jobs
    assert tracker.job["batch"]["total"] == 3000


async def test_a_rate_limited_part_is_sent_again_and_the_parts_before_it_are_kept() -> None:
    server, jobs = Server(rate_limit_at={2}), countdowns(3000)
    _, parts = await submit(server, Batch(jobs))
    assert server.frames[1] == server.frames[2]  # the same part again, not the batch from the start
    assert server.received == jobs and parts == len(server.frames) - 1


async def test_after_a_dropped_connection_the_batch_is_sent_again_from_the_start() -> None:
    server, jobs = Server(drop_at=2), countdowns(3000)
    _, parts = await submit(server, Batch(jobs))
    assert [frame["offset"] for frame in server.frames[:3]] == [0, server.frames[1]["offset"], 0]
    assert server.received == jobs and parts == len(server.frames) - 2


async def test_a_refused_first_frame_is_the_error_with_each_bad_job_in_order_and_its_kind() -> None:
    class Refusing(Server):
        async def send(self, message: Message) -> None:
            details = {"jobs.12.steps": "Input should be greater than or equal to 1", "jobs.3.to.0": "Enter a valid"}
            self.answer({"type": "error", "code": "invalid_params", "message": "Some jobs …", "details": details})

    jobs = countdowns(20)
    jobs[3] = emails(1)[0]
    with pytest.raises(CliError) as caught:
        await submit(Refusing(), Batch(jobs))
    assert caught.value.code == "invalid_params"
    assert caught.value.lines()[1:] == [
        "  jobs.3.to.0 [email.send]: Enter a valid",
        "  jobs.12.steps [demo.countdown]: Input should be greater than or equal to 1",
    ]


async def test_ctrl_c_before_the_answer_ends_the_command_without_a_batch() -> None:
    class Interrupted(Server):
        async def send(self, message: Message) -> None:
            self.queue.put_nowait({"type": INTERRUPT})

    with pytest.raises(CliError) as caught:
        await submit(Interrupted(), Batch(countdowns(2)))
    assert caught.value.exit_code == 130


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


def connected() -> tuple[Session, Socket]:
    session, socket = Session(Config("http://127.0.0.1:1", "token")), Socket()
    session._socket = socket  # type: ignore[assignment]
    return session, socket


async def test_the_session_sends_exactly_the_text_that_was_measured() -> None:
    session, socket = connected()
    message = part(Batch(emails(3)), REQUEST_ID, 0)
    await session.send(message)
    assert socket.sent == [encode(message)]
    assert json.loads(socket.sent[0]) == message and len(socket.sent[0].encode()) == frame_size(message)


async def test_the_session_refuses_a_message_larger_than_a_frame_instead_of_sending_it() -> None:
    # The server would drop the connection, and the resend after reconnecting would be dropped again.
    session, socket = connected()
    whole = {"type": "batch.submit", "request_id": REQUEST_ID, "mode": "parallel", "jobs": countdowns(3000)}
    with pytest.raises(CliError) as caught:
        await session.send(whole)
    assert caught.value.code == "frame_too_large" and socket.sent == []
    assert "at most 65,536 bytes" in caught.value.message
