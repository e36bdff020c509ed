"""Bad input answers an `error` with the protocol's code, and the connection stays usable."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from gateway import protocol
from gateway.protocol import ProtocolError
from tasks import services
from tasks.models import Job
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_still_usable(socket: Socket) -> None:
    assert await socket.request({"type": "ping"}) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('"a string"', "bad_json"),
        ("{}", "bad_message"),
        ('{"type": 7}', "bad_message"),
        ('{"type": "job.launch"}', "unknown_type"),
        ('{"type": "job.submit", "kind": "demo.countdown", "params": {}}', "bad_message"),
        ('{"type": "job.submit", "request_id": 5, "kind": "demo.countdown", "params": {}}', "bad_message"),
        ('{"type": "job.submit", "request_id": "", "kind": "demo.countdown", "params": {}}', "bad_message"),
        ('{"type": "job.submit", "request_id": "r", "kind": "demo.countdown", "params": []}', "bad_message"),
        ('{"type": "job.cancel"}', "bad_message"),
        ('{"type": "job.retry", "job_id": null}', "bad_message"),
        ("[" * 5000 + "]" * 5000, "bad_message"),
        (
            '{"type": "job.submit", "request_id": "r", "kind": "demo.countdown", "params": {"steps": 1'
            + "0" * 5000
            + "}}",
            "bad_message",
        ),
        ('{"type": "ping", "n": 1' + "0" * 100 + "}", "bad_message"),  # 101 digits
        ('{"type": "ping", "n": -0.' + "0" * 100 + "1}", "bad_message"),
        ('{"type": "ping", "n": 1e999}', "bad_message"),  # inf, to Python
        ('{"type": "ping", "n": -1e999}', "bad_message"),
        ('{"type": "ping", "n": [NaN]}', "bad_message"),
        ('{"type": "ping", "n": {"x": Infinity}}', "bad_message"),
        ('{"type": "ping", "n": -Infinity}', "bad_message"),
        ('{"type": "ping", "n": 1e999', "bad_json"),  # not JSON at all, whatever its numbers
    ],
)
async def test_malformed_frames_get_a_coded_error(user: User, frame: str, code: str) -> None:
    async with connected(user) as (socket, _):
        reply = await socket.request(frame)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        await assert_still_usable(socket)


def nested(depth: int, inner: str = "1") -> str:
    """A ping whose frame nests `depth` levels deep: its object, then arrays and objects in turn."""
    value = inner
    for level in range(depth - 1):
        value = "[" + value + "]" if level % 2 == 0 else '{"a": ' + value + "}"
    return '{"type": "ping", "n": ' + value + "}"


async def test_nesting_past_the_bound_is_a_bad_message(user: User) -> None:
    async with connected(user) as (socket, _):
        reply = await socket.request(nested(protocol.MAX_NESTING + 1))
        assert reply["code"] == "bad_message" and "nested too deeply" in reply["message"], reply
        assert str(protocol.MAX_NESTING) in reply["message"]
        await assert_still_usable(socket)


@pytest.mark.parametrize(
    "frame",
    [
        nested(protocol.MAX_NESTING),
        # Brackets inside strings are text, escaped quotes included.
        '{"type": "ping", "n": "' + "[{" * 1000 + '"}',
        '{"type": "ping", "n": "\\\\\\"' + "[" * 1000 + '", "m": ["]]]\\\\"]}',
    ],
    ids=["at the bound", "brackets in a string", "escaped quotes in strings"],
)
async def test_nesting_up_to_the_bound_is_read(user: User, frame: str) -> None:
    json.loads(frame)  # the frame is valid JSON
    async with connected(user) as (socket, _):
        assert await socket.request(frame) == {"type": "pong"}


@pytest.mark.parametrize(
    "frame",
    ["[" * (64 * 1024), '{"a": ' * 10_000, "[" * 40 + '"' + "]" * 40],
    ids=["64 KiB of [", "open objects", "not JSON either"],
)
def test_a_deep_frame_is_refused_before_any_json_is_built(monkeypatch: pytest.MonkeyPatch, frame: str) -> None:
    def never(text: str) -> None:
        raise AssertionError("parsed a frame nested past the bound")

    monkeypatch.setattr(protocol, "_loads", never)
    with pytest.raises(ProtocolError) as refused:
        protocol.parse(frame)
    assert refused.value.code == "bad_message" and "nested too deeply" in refused.value.message


@pytest.mark.parametrize("number", ["1" * 100, "-" + "9" * 100, "1e308", "1e-999", "0." + "5" * 99])
async def test_numbers_up_to_100_digits_are_read(user: User, number: str) -> None:
    async with connected(user) as (socket, _):
        assert await socket.request('{"type": "ping", "n": ' + number + "}") == {"type": "pong"}


async def test_a_refused_number_keeps_the_request_id_and_says_why(user: User) -> None:
    async with connected(user) as (socket, _):
        params = '{"steps": 1e999}'
        frame = '{"type": "job.submit", "request_id": "r9", "kind": "demo.countdown", "params": ' + params + "}"
        reply = await socket.request(frame)
        assert reply["code"] == "bad_message" and reply["request_id"] == "r9"
        assert "finite" in reply["message"] and "100 digits" in reply["message"]


async def test_bad_message_details_name_the_fields(user: User) -> None:
    async with connected(user) as (socket, _):
        reply = await socket.request({"type": "job.submit", "request_id": 5, "kind": "demo.countdown"})
        assert reply["code"] == "bad_message"
        assert set(reply["details"]) == {"request_id", "params"}


async def test_an_error_to_any_message_echoes_the_request_id_it_carried(user: User) -> None:
    async with connected(user) as (socket, _):
        reply = await socket.request({"type": "job.cancel", "job_id": "no-such-job", "request_id": "c1"})
        assert (reply["code"], reply["request_id"]) == ("not_found", "c1")
        reply = await socket.request({"type": "job.retry", "job_id": 5, "request_id": "c2"})
        assert (reply["code"], reply["request_id"]) == ("bad_message", "c2")
        # Without one (a version 1 client), the error's request_id is null, as before.
        reply = await socket.request({"type": "job.cancel", "job_id": "no-such-job"})
        assert (reply["code"], reply["request_id"]) == ("not_found", None)


async def test_unknown_kind(user: User) -> None:
    async with connected(user) as (socket, _):
        reply = await socket.request({"type": "job.submit", "request_id": "r1", "kind": "crypto.mine", "params": {}})
        assert reply == {"type": "error", "request_id": "r1", "code": "unknown_kind", "message": reply["message"]}
        await assert_still_usable(socket)


async def test_invalid_params_map_each_field_to_what_is_wrong(user: User) -> None:
    async with connected(user) as (socket, _):
        params: dict[str, Any] = {"steps": 0, "interval_ms": 20000, "surprise": True}
        reply = await socket.request(
            {"type": "job.submit", "request_id": "r2", "kind": "demo.countdown", "params": params}
        )
        assert reply["code"] == "invalid_params" and reply["request_id"] == "r2"
        assert set(reply["details"]) == {"steps", "interval_ms", "surprise"}
        await assert_still_usable(socket)


async def test_a_binary_frame_is_unsupported(user: User) -> None:
    async with connected(user) as (socket, _):
        await socket.communicator.send_to(bytes_data=b"\x00\x01")
        reply = await socket.receive()
        assert reply["code"] == "unsupported"
        await assert_still_usable(socket)


async def test_a_frame_over_64_kib_closes_with_4009(user: User) -> None:
    async with connected(user) as (socket, _):
        frame = json.dumps({"type": "ping", "pad": "é" * (33 * 1024)})  # 66 KiB in UTF-8, 33 K characters
        await socket.send(frame)
        assert await socket.communicator.receive_output(3) == {"type": "websocket.close", "code": 4009}


async def test_a_frame_just_under_the_limit_is_accepted(user: User) -> None:
    async with connected(user) as (socket, _):
        frame = json.dumps({"type": "ping", "pad": "x" * (64 * 1024 - 40)})
        assert await socket.request(frame) == {"type": "pong"}


@pytest.mark.parametrize("message_type", ["job.cancel", "job.retry"])
async def test_a_missing_or_foreign_job_is_not_found(user: User, other_user: User, message_type: str) -> None:
    theirs, _ = await services_submit(other_user)
    if message_type == "job.retry":  # a job its owner could retry
        theirs = await database_sync_to_async(services.cancel)(other_user, str(theirs.pk))
    before = await database_sync_to_async(stored_state)(theirs.pk)
    async with connected(user) as (socket, _):
        for job_id in (str(theirs.pk), str(uuid.uuid4()), "nonsense"):
            reply = await socket.request({"type": message_type, "job_id": job_id})
            assert reply["code"] == "not_found" and reply["message"] == "No such job."
        await assert_still_usable(socket)
    # Read again from the database: their job did not move.
    assert await database_sync_to_async(stored_state)(theirs.pk) == before


def stored_state(job_id: uuid.UUID) -> dict[str, Any]:
    """What any transition changes, as the database has it now."""
    return dict(Job.objects.filter(pk=job_id).values("status", "seq", "attempt", "celery_task_id", "updated_at").get())


async def test_an_unexpected_failure_answers_internal_with_an_error_id_and_no_internals(
    user: User, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("password=hunter2 in a traceback")

    monkeypatch.setattr(services, "submit", explode)
    async with connected(user) as (socket, _):
        reply = await socket.request({"type": "job.submit", "request_id": "r", "kind": "demo.countdown", "params": {}})
        assert reply["code"] == "internal" and reply["request_id"] == "r"
        assert "hunter2" not in json.dumps(reply) and "Traceback" not in json.dumps(reply)
        # An id to quote to an operator, who finds the traceback under it in the log.
        error_id = reply["details"]["error_id"]
        assert error_id in reply["message"]
        [record] = [record for record in caplog.records if record.exc_info]
        assert error_id in record.getMessage() and "'r'" in record.getMessage()
        assert logged(record) == {"event": "socket.error", "error_id": error_id, "request_id": "r", "user_id": user.pk}
        await assert_still_usable(socket)


async def test_an_unexpected_failure_without_a_request_id_is_logged_with_none(
    user: User, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "cancel", explode)
    async with connected(user) as (socket, _):
        reply = await socket.request({"type": "job.cancel", "job_id": "x"})
        assert reply["code"] == "internal" and reply["request_id"] is None
        error_id = reply["details"]["error_id"]
        [record] = [record for record in caplog.records if record.exc_info]
        assert "request_id" not in record.getMessage()
        assert logged(record) == {"event": "socket.error", "error_id": error_id, "request_id": None, "user_id": user.pk}


def logged(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a log record (what `extra=` put on it)."""
    return {key: getattr(record, key, "missing") for key in ("event", "error_id", "request_id", "user_id")}


async def services_submit(owner: User) -> Any:
    return await database_sync_to_async(services.submit)(owner, "theirs", "demo.countdown", {"steps": 1})
