"""A kind is one declaration: the registry checks it, names its Celery task after it with its limits and queue,
and every client learns of it (hello.kinds, kind.list)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict

from celery_app import app
from tasks import kinds
from tasks.kinds import Context, kind
from tests.unit.sockets import connected

BUILT_IN = {"demo.countdown", "email.send", "file.process", "reports.jobs_csv"}


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def nothing(ctx: Context[NoParams]) -> dict[str, Any]:
    return {}


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, kinds.Kind]:
    """Declarations made by a test go into a copy of the registry."""
    registry = dict(kinds._KINDS)
    monkeypatch.setattr(kinds, "_KINDS", registry)
    return registry


def test_the_kinds_shipped_and_the_example_are_registered() -> None:
    assert set(kinds.names()) >= BUILT_IN


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_each_kind_has_a_celery_task_named_after_it_with_its_limits_and_queue(name: str) -> None:
    declared = kinds.get(name)
    task = app.tasks[name]
    assert (task.soft_time_limit, task.time_limit) == (declared.soft_time_limit, declared.time_limit)
    assert declared.soft_time_limit < declared.time_limit
    assert declared.queue in {queue.name for queue in app.conf.task_queues}


def test_a_declaration_fills_in_what_it_leaves_out(scratch_registry: dict[str, kinds.Kind]) -> None:
    kind("team.nothing", params=NoParams, title="Nothing", soft_time_limit=100)(nothing)
    declared = kinds.get("team.nothing")
    assert (declared.time_limit, declared.queue, declared.submit_label) == (160, "default", "Start nothing")
    assert declared.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"name": "NoDots"}, "lowercase dotted"),
        ({"name": "batch"}, "lowercase dotted"),
        ({"name": "team." + "x" * 70}, "lowercase dotted"),
        ({"name": "demo.countdown"}, "Two job kinds"),
        ({"queue": "Has Spaces"}, "queue"),
        ({"soft_time_limit": 60, "time_limit": 60}, "soft_time_limit must be below"),
        ({"soft_time_limit": 3000, "time_limit": 3100}, "BROKER_VISIBILITY_TIMEOUT"),
    ],
)
def test_a_declaration_that_does_not_fit_stops_start_up(
    scratch_registry: dict[str, kinds.Kind], fields: dict[str, Any], complaint: str
) -> None:
    declaration = {"name": "team.fine", "params": NoParams, **fields}
    name = declaration.pop("name")
    with pytest.raises(ImproperlyConfigured, match=complaint):
        kind(name, **declaration)(nothing)


@pytest.mark.django_db(transaction=True)
async def test_hello_names_every_kind_and_kind_list_describes_each(user: User) -> None:
    async with connected(user) as (socket, hello):
        assert set(hello["kinds"]) == set(kinds.names())
        reply = await socket.request({"type": "kind.list", "request_id": "k1"})
    assert reply["type"] == "kind.list" and reply["request_id"] == "k1"
    described = {entry["name"]: entry for entry in reply["kinds"]}
    assert set(described) == set(kinds.names())
    export = described["reports.jobs_csv"]
    assert export["title"] == "Export my jobs" and export["queue"] == "default"
    assert export["params_schema"]["required"] == ["created_after", "created_before"]
    assert described["file.process"]["params_schema"]["properties"]["upload_id"]["format"] == "upload-id"
