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

from notifications.consumers import JobsConsumer

pytestmark = pytest.mark.django_db(transaction=True)

ERROR_CODES = {
    "bad_json", "bad_message", "unknown_type", "unknown_kind", "invalid_params",
    "not_found", "conflict", "rate_limited", "unsupported", "internal",
}  # fmt: skip
REPLY_TYPES = {"error", "pong", "job.accepted", "job.queued", "job.cancelled"}
CLOSE_CODES = {4008, 4009}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=15,
)
message = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["job.submit", "job.cancel", "job.retry", "ping", "job.nope"]) | json_values,
        "request_id": st.text(min_size=1, max_size=70) | json_values,
        "kind": st.sampled_from(["demo.countdown", "no.such"]) | json_values,
        "params": st.fixed_dictionaries(
            {}, optional={"steps": json_values, "interval_ms": json_values, "fail_at": json_values}
        )
        | json_values,
        "job_id": st.uuids().map(str) | json_values,
    },
)
frames = st.one_of(
    message.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 100_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(4_000, 60_000).map(lambda digits: '{"type":"ping","n":' + "9" * digits + "}"),
    st.integers(60_000, 70_000).map(lambda size: json.dumps({"type": "ping", "pad": "x" * size})),
)


async def send(communicator: WebsocketCommunicator, frame: str | bytes) -> None:
    # send_input, not send_to: an empty frame is a frame too.
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})


def check_reply(output: dict[str, Any]) -> dict[str, Any]:
    assert output["type"] == "websocket.send", output
    text = output["text"]
    assert "Traceback" not in text and 'File "' not in text
    reply: dict[str, Any] = json.loads(text)
    assert reply["type"] in REPLY_TYPES, reply
    if reply["type"] == "error":
        assert reply["code"] in ERROR_CODES, reply
        assert isinstance(reply["message"], str) and reply["message"]
    return reply


@pytest.fixture
def generous_limits(settings: Settings) -> None:
    """The fuzzer is one fast client: rate limits are tested elsewhere."""
    settings.RATE_LIMIT_MESSAGES_PER_SECOND = 1_000_000
    settings.RATE_LIMIT_SUBMITS_PER_MINUTE = 1_000_000


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
        assert reply["type"] in {"job.queued", "job.cancelled"}
    await communicator.disconnect()
