"""ops.kind.pause and ops.kind.resume: staff only, named kinds only, and the operations view's controls
show the kind's state at once."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from tasks.models import KindState
from tests.factories import UserFactory
from tests.unit.sockets import connected

pytestmark = pytest.mark.django_db(transaction=True)


async def test_staff_pause_and_resume_a_kind_and_their_ops_view_shows_it(user: User) -> None:
    staff = await database_sync_to_async(UserFactory.create)(is_staff=True)
    async with connected(staff) as (socket, _):
        first = await socket.request({"type": "ops.subscribe"})
        assert {c["kind"]: c["paused"] for c in first["controls"]}["file.process"] is False
        paused = await socket.request({"type": "ops.kind.pause", "kind": "file.process", "request_id": "k"})
        assert paused == {"type": "ops.kind", "request_id": "k", "kind": "file.process", "paused": True}
        fresh = await socket.receive()  # sent at once, not at the next interval
        assert fresh["type"] == "ops.stats"
        assert {c["kind"]: c["paused"] for c in fresh["controls"]}["file.process"] is True
        state = await database_sync_to_async(KindState.objects.get)(kind="file.process")
        assert (state.paused, state.changed_by) == (True, staff.username)
        resumed = await socket.request({"type": "ops.kind.resume", "kind": "file.process"})
        assert resumed["paused"] is False
        assert (await socket.receive())["type"] == "ops.stats"
        unknown = await socket.request({"type": "ops.kind.pause", "kind": "no.such", "request_id": "u"})
        assert (unknown["code"], unknown["request_id"]) == ("unknown_kind", "u")


async def test_anyone_else_is_refused(user: User) -> None:
    async with connected(user) as (socket, _):
        refused = await socket.request({"type": "ops.kind.pause", "kind": "file.process", "request_id": "r"})
    assert (refused["code"], refused["request_id"]) == ("bad_message", "r")
    assert not await database_sync_to_async(KindState.objects.filter(paused=True).exists)()
