"""Making a schedule checks everything it will need; its owner pauses, resumes and deletes it; nobody else can."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from schedules import services
from schedules.errors import ScheduleNotFound
from schedules.models import Schedule
from tasks.errors import InvalidParams, JobConflict, UnknownKind
from tests.unit.schedules import make_schedule

pytestmark = pytest.mark.django_db(transaction=True)


def refused(user: User, **fields: object) -> dict[str, str]:
    request = {"request_id": "r", "kind": "demo.countdown", "params": {"steps": 1}, **fields}
    with pytest.raises(InvalidParams) as refusal:
        services.create(user, services.Request(**request))  # type: ignore[arg-type]
    assert Schedule.objects.count() == 0
    return refusal.value.details or {}


def test_a_cron_schedule_is_next_due_at_its_first_time_after_now(user: User) -> None:
    schedule = make_schedule(user, cron="0  8 * * 1", timezone="Europe/Paris", name="Monday report")
    assert schedule.cron == "0 8 * * 1"  # spaces normalised
    assert schedule.next_run_at is not None and schedule.next_run_at > timezone.now()
    local = schedule.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 8, 0)


def test_a_one_off_time_without_an_offset_is_read_in_the_schedules_timezone(user: User) -> None:
    schedule = make_schedule(user, run_at="2027-01-15T02:00:00", timezone="Europe/Paris")
    assert schedule.run_at == schedule.next_run_at == datetime(2027, 1, 15, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({}, "cron"),
        ({"cron": "0 8 * * *", "run_at": "2027-01-01T00:00:00Z"}, "cron"),
        ({"cron": "0 8 * *"}, "cron"),
        ({"cron": "0 8 * * *", "timezone": "Europe/Pariss"}, "timezone"),
        ({"run_at": "next tuesday"}, "run_at"),
        ({"cron": "0 8 * * *", "params": {"steps": 0}}, "params.steps"),
    ],
)
def test_a_bad_field_is_invalid_params_naming_it(user: User, fields: dict[str, object], named: str) -> None:
    assert named in refused(user, **fields)


def test_an_unknown_kind_is_refused(user: User) -> None:
    with pytest.raises(UnknownKind):
        services.create(user, services.Request(request_id="r", kind="no.such", params={}, cron="0 8 * * *"))


def test_the_same_request_id_makes_one_schedule(user: User) -> None:
    request = services.Request(request_id="same", kind="demo.countdown", params={"steps": 1}, cron="0 8 * * *")
    first, created = services.create(user, request)
    again, created_again = services.create(user, request)
    assert (created, created_again, again.pk) == (True, False, first.pk)


def test_a_user_has_at_most_the_allowed_number_of_schedules(user: User, settings: Settings) -> None:
    settings.JOBS_SCHEDULES_PER_USER = 2
    make_schedule(user)
    make_schedule(user)
    with pytest.raises(JobConflict, match="2 schedules"):
        make_schedule(user)


def test_pause_clears_the_next_run_and_resume_sets_the_first_after_now(user: User) -> None:
    schedule = make_schedule(user, cron="*/10 * * * *")
    paused = services.pause(user, str(schedule.pk))
    assert (paused.paused, paused.next_run_at) == (True, None)
    resumed = services.resume(user, str(schedule.pk))
    assert resumed.paused is False and resumed.next_run_at is not None
    assert timezone.now() < resumed.next_run_at <= timezone.now() + timedelta(minutes=10)


def test_a_one_off_paused_past_its_time_runs_when_resumed(user: User) -> None:
    schedule = make_schedule(user, run_at="2020-01-01T00:00:00Z")
    services.pause(user, str(schedule.pk))
    assert services.resume(user, str(schedule.pk)).next_run_at == datetime(2020, 1, 1, tzinfo=UTC)


def test_delete_removes_it_and_answers_what_it_was(user: User) -> None:
    schedule = make_schedule(user)
    deleted = services.delete(user, str(schedule.pk))
    assert deleted.pk == schedule.pk
    assert not Schedule.objects.filter(pk=schedule.pk).exists()


@pytest.mark.parametrize("change", [services.pause, services.resume, services.delete])
def test_another_users_schedule_is_not_found(user: User, other_user: User, change: object) -> None:
    schedule = make_schedule(other_user)
    with pytest.raises(ScheduleNotFound):
        change(user, str(schedule.pk))  # type: ignore[operator]
    with pytest.raises(ScheduleNotFound):
        change(user, "not-an-id")  # type: ignore[operator]
    assert Schedule.objects.get(pk=schedule.pk).paused is False
