"""The schedule messages of protocol 1.1: answers to the asker, the same news to the owner's other sockets,
errors that name the request and the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from schedules import scheduler
from schedules.models import Schedule
from tests.unit.sockets import Socket, connected

pytestmark = pytest.mark.django_db(transaction=True)

CREATE = {
    "type": "schedule.create",
    "request_id": "s-1",
    "name": "Morning count",
    "kind": "demo.countdown",
    "params": {"steps": 2},
    "cron": "0 8 * * *",
    "timezone": "Europe/Paris",
}


async def create(socket: Socket) -> dict[str, object]:
    answer = await socket.request(CREATE)
    assert answer["type"] == "schedule.created", answer
    return answer


async def test_create_answers_the_asker_once_and_tells_the_other_sockets(user: User) -> None:
    async with connected(user) as (asker, _), connected(user) as (other, _):
        answer = await create(asker)
        schedule = answer["schedule"]
        assert isinstance(schedule, dict)
        assert answer["request_id"] == "s-1"
        assert {key: schedule[key] for key in ("name", "kind", "cron", "run_at", "timezone", "paused")} == {
            "name": "Morning count",
            "kind": "demo.countdown",
            "cron": "0 8 * * *",
            "run_at": None,
            "timezone": "Europe/Paris",
            "paused": False,
        }
        assert schedule["next_run_at"] is not None and schedule["last_job_id"] is None
        assert await other.receive() == answer
        assert await asker.nothing_more()


async def test_list_pause_resume_and_delete(user: User) -> None:
    async with connected(user) as (asker, _), connected(user) as (other, _):
        schedule_id = (await create(asker))["schedule"]["id"]  # type: ignore[index]
        await other.receive()
        listed = await asker.request({"type": "schedule.list", "request_id": "l"})
        assert listed["request_id"] == "l" and [s["id"] for s in listed["schedules"]] == [schedule_id]

        paused = await asker.request({"type": "schedule.pause", "schedule_id": schedule_id, "request_id": "p"})
        assert paused["type"] == "schedule.changed" and paused["request_id"] == "p" and paused["deleted"] is False
        assert paused["schedule"]["paused"] is True and paused["schedule"]["next_run_at"] is None
        assert await other.receive() == paused

        resumed = await asker.request({"type": "schedule.resume", "schedule_id": schedule_id})
        assert resumed["request_id"] is None and resumed["schedule"]["next_run_at"] is not None
        assert await other.receive() == resumed

        deleted = await asker.request({"type": "schedule.delete", "schedule_id": schedule_id, "request_id": "d"})
        assert deleted["deleted"] is True and deleted["schedule"]["id"] == schedule_id
        assert await other.receive() == deleted
        assert (await asker.request({"type": "schedule.list"}))["schedules"] == []


async def test_a_bad_cron_is_invalid_params_naming_it_and_the_socket_goes_on(user: User) -> None:
    async with connected(user) as (socket, _):
        error = await socket.request({**CREATE, "cron": "every day"})
        assert (error["type"], error["code"], error["request_id"]) == ("error", "invalid_params", "s-1")
        assert set(error["details"]) == {"cron"}
        assert (await socket.request({"type": "ping"}))["type"] == "pong"


async def test_another_users_schedule_is_not_found(user: User, other_user: User) -> None:
    async with connected(other_user) as (owner, _):
        schedule_id = (await create(owner))["schedule"]["id"]  # type: ignore[index]
    async with connected(user) as (socket, _):
        for change in ("schedule.pause", "schedule.resume", "schedule.delete"):
            error = await socket.request({"type": change, "schedule_id": schedule_id, "request_id": "x"})
            assert (error["code"], error["request_id"]) == ("not_found", "x")
        assert (await socket.request({"type": "schedule.list"}))["schedules"] == []


async def test_a_run_tells_the_owners_sockets_its_job(user: User) -> None:
    async with connected(user) as (socket, _):
        schedule_id = (await create(socket))["schedule"]["id"]  # type: ignore[index]
        due = datetime(2027, 5, 1, 6, 0, tzinfo=UTC)
        await database_sync_to_async(Schedule.objects.filter(pk=schedule_id).update)(next_run_at=due)
        assert await database_sync_to_async(scheduler.run_due)(due + timedelta(seconds=1)) == 1
        frames = await socket.receive_until("schedule.changed")
        changed = frames[-1]["schedule"]
        assert changed["last_run_at"] == "2027-05-01T06:00:00.000Z" and changed["last_job_id"] is not None
        assert changed["last_job_status"] == "queued"
        accepted = [frame for frame in frames if frame["type"] == "job.queued"]
        assert [frame["job"]["id"] for frame in accepted] == [changed["last_job_id"]]
