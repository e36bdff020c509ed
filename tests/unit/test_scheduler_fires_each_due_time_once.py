"""Each due time of a schedule submits exactly one job, as its owner, whoever fires it and however often."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection

from schedules import scheduler
from schedules.models import Schedule
from schedules.services import following
from tasks import services as jobs
from tasks.models import JobStatus
from tests.unit.conftest import SentTasks
from tests.unit.schedules import jobs_of, make_schedule

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_due_time_makes_one_job_however_often_the_scheduler_ticks(user: User, sent_tasks: SentTasks) -> None:
    schedule = make_schedule(user, cron="0 8 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at("2027-05-01T08:00"))
    assert scheduler.run_due(at("2027-05-01T07:59:59")) == 0
    assert scheduler.run_due(at("2027-05-01T08:00:00")) == 1
    assert scheduler.run_due(at("2027-05-01T08:00:01")) == 0
    (job,) = jobs_of(schedule)
    assert job.owner == user and job.kind == "demo.countdown" and job.params == schedule.params
    assert job.request_id == f"schedule:{schedule.pk}:20270501T080000Z"
    assert job.status == JobStatus.QUEUED and [task["args"] for task in sent_tasks] == [[str(job.pk)]]
    schedule.refresh_from_db()
    assert (schedule.last_run_at, schedule.next_run_at) == (at("2027-05-01T08:00"), at("2027-05-02T08:00"))
    assert schedule.last_job == job and schedule.last_error == ""


def test_due_times_missed_while_no_scheduler_ran_run_once(user: User) -> None:
    schedule = make_schedule(user, cron="*/5 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at("2027-05-01T08:00"))
    # Back after an hour down: twelve due times passed, one job; the next is after now.
    assert scheduler.run_due(at("2027-05-01T09:02")) == 1
    assert scheduler.run_due(at("2027-05-01T09:03")) == 0
    assert len(jobs_of(schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == at("2027-05-01T09:05")


def test_a_one_off_runs_once_and_is_then_done(user: User) -> None:
    schedule = make_schedule(user, run_at="2027-05-01T08:00:00Z")
    assert scheduler.run_due(at("2027-05-01T08:00:00")) == 1
    assert scheduler.run_due(at("2027-06-01T08:00:00")) == 0
    schedule.refresh_from_db()
    assert schedule.next_run_at is None and schedule.last_run_at == at("2027-05-01T08:00")
    assert len(jobs_of(schedule)) == 1


def test_a_paused_schedule_does_not_run(user: User) -> None:
    schedule = make_schedule(user, cron="* * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(paused=True, next_run_at=at("2027-05-01T08:00"))
    assert scheduler.run_due(at("2027-05-01T08:10")) == 0
    assert jobs_of(schedule) == []


def test_params_that_no_longer_hold_make_no_job_and_say_why(user: User) -> None:
    schedule = make_schedule(user, cron="0 8 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at("2027-05-01T08:00"), params={"steps": 0})
    assert scheduler.run_due(at("2027-05-01T08:00")) == 1  # the due time is used up, not tried every tick
    schedule.refresh_from_db()
    assert jobs_of(schedule) == [] and schedule.last_job is None
    assert "not valid" in schedule.last_error
    assert schedule.next_run_at == at("2027-05-02T08:00")


def test_two_schedulers_at_once_make_one_job(user: User) -> None:
    """Two threads fire the same due time at the same moment, each on its own database connection."""
    schedule = make_schedule(user, cron="0 8 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at("2027-05-01T08:00"))
    start, fired = threading.Barrier(2), []

    def fire() -> None:
        try:
            start.wait()
            fired.append(scheduler.fire(schedule.pk, at("2027-05-01T08:00"), at("2027-05-01T08:00")))
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fired) == [False, True]
    assert len(jobs_of(schedule)) == 1


@pytest.mark.parametrize(
    ("night", "fires_at"),
    [
        ("2027-03-28", "2027-03-28T01:30"),  # 02:30 does not exist: it runs at 03:30 CEST
        ("2027-10-31", "2027-10-31T00:30"),  # 02:30 happens twice: it runs at the first
    ],
)
def test_a_clock_change_night_runs_a_daily_job_once(user: User, night: str, fires_at: str) -> None:
    """The scheduler ticks every minute of the night on a fake clock; 02:30 Paris time runs once."""
    schedule = make_schedule(user, cron="30 2 * * *", timezone="Europe/Paris")
    evening = at(f"{night}T00:00") - timedelta(hours=2)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=following(schedule, evening))
    minutes = [evening + timedelta(minutes=m) for m in range(6 * 60)]
    fired_at = [minute for minute in minutes if scheduler.run_due(minute)]
    assert fired_at == [at(fires_at)]
    assert [job.request_id[-16:] for job in jobs_of(schedule)] == [f"{at(fires_at):%Y%m%dT%H%M%SZ}"]


def test_a_database_failure_in_the_middle_leaves_the_due_time_unclaimed_and_the_next_tick_runs_it_once(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim and the job are one transaction: the connection lost between them (a failover) undoes both."""
    schedule = make_schedule(user, cron="0 8 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at("2027-05-01T08:00"))
    submit = jobs.submit

    def fails_once(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(jobs, "submit", submit)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(jobs, "submit", fails_once)
    assert scheduler.run_due(at("2027-05-01T08:00:00")) == 0
    schedule.refresh_from_db()
    assert (schedule.next_run_at, schedule.last_run_at, jobs_of(schedule)) == (at("2027-05-01T08:00"), None, [])
    assert scheduler.run_due(at("2027-05-01T08:00:01")) == 1
    assert scheduler.run_due(at("2027-05-01T08:00:02")) == 0
    (job,) = jobs_of(schedule)
    assert job.request_id.endswith("20270501T080000Z")
