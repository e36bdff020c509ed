"""Property: whatever a client sends, the consumer answers a documented error or closes with a
documented code; it never crashes (1011), never leaks a traceback, and stays usable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings

from gateway.consumers import JobsConsumer

pytestmark = pytest.mark.django_db(transaction=True)

# Every code a client's frame may earn; `internal` is not among them: it means the server failed.
ERROR_CODES = {
    "bad_json", "bad_message", "unknown_type", "unknown_kind", "invalid_params",
    "not_found", "conflict", "rate_limited", "unsupported",
}  # fmt: skip
# Answers, and the events a valid message causes (to this socket, as to the user's others).
FRAME_TYPES = {"job.queued", "job.cancelled", "notification.unread"}
REPLY_TYPES = {"error", "pong", "job.accepted", "notification.list", *FRAME_TYPES}
CLOSE_CODES = {4008, 4009}
TYPES = [
    "job.submit", "job.cancel", "job.retry", "ping", "job.nope",
    "notification.list", "notification.read", "notification.read_all", "notification.nope",
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=15,
)
ids = st.integers(-2, 5) | st.integers(2**63 - 2, 2**63 + 1) | st.integers()
fields = {
    "request_id": st.text(min_size=1, max_size=70) | json_values,
    "kind": st.sampled_from(["demo.countdown", "no.such"]) | json_values,
    "params": st.fixed_dictionaries(
        {}, optional={"steps": json_values, "interval_ms": json_values, "fail_at": json_values}
    )
    | json_values,
    "job_id": st.uuids().map(str) | json_values,
    # notification.list and notification.read: ids and page sizes, around and past their bounds.
    "before": ids | json_values,
    "limit": st.integers(-2, 102) | json_values,
    "id": ids | json_values,
}
# Half the frames are messages of a known type with fuzzed fields, so that each type, valid or
# nearly so, is tried many times a run; the other half anything at all.
typed_messages = st.fixed_dictionaries({"type": st.sampled_from(TYPES)}, optional=fields)
messages = st.fixed_dictionaries({}, optional={"type": st.sampled_from(TYPES) | json_values, **fields})
any_frames = st.one_of(
    messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 100_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(4_000, 60_000).map(lambda digits: '{"type":"ping","n":' + "9" * digits + "}"),
    st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1" + "0" * 100]).map(
        lambda n: '{"type":"ping","n":' + n + "}"
    ),
    st.integers(60_000, 70_000).map(lambda size: json.dumps({"type": "ping", "pad": "x" * size})),
)
# Not `typed | any_frames`: Hypothesis flattens that into one choice among all eleven branches.
frames = st.sampled_from([typed_messages.map(json.dumps), any_frames]).flatmap(lambda strategy: strategy)


async def send(communicator: WebsocketCommunicator, frame: str | bytes) -> None:
    # send_input, not send_to: an empty frame is a frame too.
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})


def check_reply(output: dict[str, Any]) -> dict[str, Any]:
    assert output["type"] == "websocket.send", output
    reply: dict[str, Any] = json.loads(output["text"])
    assert reply["type"] in REPLY_TYPES, reply
    if reply["type"] == "error":
        assert reply["code"] in ERROR_CODES, reply
        assert isinstance(reply["message"], str) and reply["message"]
        # Decoded: in the frame's JSON the quote of `File "…"` is escaped.
        for text in strings_in([reply["message"], reply.get("details")]):
            assert "Traceback" not in text and 'File "' not in text, reply
    return reply


def strings_in(value: Any) -> list[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *strings_in(list(value.values()))]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return []


@pytest.fixture
def generous_limits(settings: Settings) -> None:
    """The fuzzer is one fast client: rate limits are tested elsewhere."""
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 1_000_000
    settings.RATE_LIMIT_SUBMITS_PER_MINUTE = 1_000_000
    # Its sockets carry a user but no session, which the credential re-check rightly closes
    # with 4403 (test_credentials_rechecked_in_one_batch): on a slow machine the run outlasts
    # AUTH_RECHECK_SECONDS, and an example would meet that close.
    settings.AUTH_RECHECK_SECONDS = 3600.0


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(frame=frames)
async def test_every_frame_gets_a_documented_answer(frame: str | bytes, user: User, generous_limits: None) -> None:
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    await communicator.receive_from()  # hello
    await send(communicator, frame)
    output = await communicator.receive_output(5)
    if output["type"] == "websocket.close":
        assert output.get("code") in CLOSE_CODES, output
        return
    check_reply(output)
    # Still usable: ping answers pong (after any job event the frame caused).
    await communicator.send_to(text_data='{"type":"ping"}')
    while (reply := check_reply(await communicator.receive_output(5)))["type"] != "pong":
        assert reply["type"] in FRAME_TYPES, reply
    await communicator.disconnect()
