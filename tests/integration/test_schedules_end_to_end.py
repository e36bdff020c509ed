"""Schedules with real processes: two Celery beats at once (a second one by mistake) on the live stack's
database and Redis, each firing due times; `jobsctl schedule` against Daphne; a beat restarted across
due times. Each due time makes exactly one job, and the worker runs it."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from core import stack
from schedules.models import Schedule
from tasks.models import Job
from tests.integration.cli_process import Cli
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FIRED = re.compile(r"fired (\d+) due schedule")


class Beats:
    """Celery beat processes on the live stack, each with its own schedule file and log."""

    def __init__(self, live_stack: LiveStack, directory: Path) -> None:
        self.env = {**live_stack.env, "JOBS_SCHEDULER_TICK_SECONDS": "0.2"}
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        n = len(self.logs)
        log_path = self.directory / f"beat-{n}.log"
        with open(log_path, "wb") as log:
            command = stack.beat_command(self.directory / f"beat-{n}-schedule")
            self.processes.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT))
        self.logs.append(log_path)

    def stop(self) -> None:
        stack.stop(self.processes)
        self.processes = []

    def fired(self) -> int:
        """Due times claimed, summed over every beat's log: one claim per due time, whoever made it."""
        return sum(self.fired_by(n) for n in range(len(self.logs)))

    def fired_by(self, n: int) -> int:
        return sum(int(found) for found in FIRED.findall(self.logs[n].read_text(errors="replace")))


@pytest.fixture
def beats(live_stack: LiveStack, tmp_path: Path) -> Iterator[Beats]:
    started = Beats(live_stack, tmp_path)
    try:
        yield started
    finally:
        started.stop()


def jobs_of(schedule_id: str) -> list[Job]:
    return list(Job.objects.filter(request_id__startswith=f"schedule:{schedule_id}:").order_by("created_at"))


def wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def due_at_once(schedule_ids: list[str]) -> None:
    """Bring their next due time to one coming second (cron has minutes; the test has none to wait for)."""
    due = timezone.now().replace(microsecond=0) + timedelta(seconds=2)
    assert Schedule.objects.filter(pk__in=schedule_ids).update(next_run_at=due) == len(schedule_ids)


def test_two_beats_at_once_make_one_job_per_due_time_and_jobsctl_manages_the_schedule(
    cli: Cli, beats: Beats, user: User
) -> None:
    beats.start()
    beats.start()
    made = cli.run("schedule", "add", "demo.countdown", "--cron", "0 0 1 1 *", "--param", "steps=2", "--name", "Yearly")
    assert made.returncode == 0, made.stderr
    schedule_id = made.stdout.strip()
    assert "next run 20" in made.stderr
    # Many schedules due in the same second: each beat's pass over them takes longer than a tick, so
    # the two beats claim side by side, and a due time either could take is taken by one.
    others = [
        str(Schedule.objects.create(owner=user, request_id=f"r{n}", kind="demo.countdown", params={"steps": 1},
                                    cron="0 0 1 1 *").pk)
        for n in range(40)
    ]  # fmt: skip
    every = [schedule_id, *others]

    def made_jobs() -> list[Job]:
        return list(Job.objects.filter(request_id__startswith="schedule:"))

    for round_ in range(1, 3):
        due_at_once(every)
        wait_for(lambda n=round_: len(made_jobs()) >= n * len(every), f"the jobs of due time {round_}")
    wait_for(lambda: all(job.status == "succeeded" for job in made_jobs()), "the worker to run them", timeout=120)
    time.sleep(1)  # ten more ticks of each beat: nothing more may fire
    jobs = made_jobs()
    assert len(jobs) == 2 * len(every) and len({job.request_id for job in jobs}) == len(jobs)
    assert all(job.owner_id == user.pk for job in jobs)
    assert [job.params["steps"] for job in jobs_of(schedule_id)] == [2, 2]
    assert beats.fired() == len(jobs), "a due time was claimed by both beats"
    assert all(beats.fired_by(n) for n in (0, 1)), "one beat did all the work: they never ran side by side"

    listed = cli.run("schedule", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"{schedule_id}\s+active\s+demo.countdown\s+0 0 1 1 \* \(UTC\)", listed.stdout), listed.stdout
    assert f"{jobs_of(schedule_id)[-1].pk} (succeeded)" in listed.stdout
    paused = cli.run("schedule", "pause", schedule_id[:8])
    assert paused.returncode == 0 and f"schedule {schedule_id} paused" in paused.stderr, paused.stderr
    assert Schedule.objects.get(pk=schedule_id).paused
    assert cli.run("schedule", "resume", schedule_id).returncode == 0
    assert Schedule.objects.get(pk=schedule_id).next_run_at is not None
    removed = cli.run("schedule", "rm", schedule_id)
    assert removed.returncode == 0 and f"schedule {schedule_id} deleted" in removed.stderr, removed.stderr
    assert not Schedule.objects.filter(pk=schedule_id).exists() and len(jobs_of(schedule_id)) == 2


def test_a_bad_schedule_is_refused_by_jobsctl_with_the_field_named(cli: Cli) -> None:
    refused = cli.run("schedule", "add", "demo.countdown", "--cron", "0 8 * *", "--param", "steps=1")
    assert refused.returncode == 2
    assert "invalid_params" in refused.stderr and "cron:" in refused.stderr
    assert not Schedule.objects.exists()


def test_due_times_missed_while_beat_was_down_run_once_when_it_is_back(beats: Beats, user: User) -> None:
    # Every minute of the hour before this one: beat was down through all sixty due times, and the
    # next one is tomorrow, so none can come due while the test runs (whatever the clock says now).
    hour_ago = timezone.now() - timedelta(hours=1)
    schedule = Schedule.objects.create(
        owner=user,
        request_id=uuid.uuid4().hex,
        kind="demo.countdown",
        params={"steps": 1},
        cron=f"* {hour_ago.hour} * * *",
    )
    missed = hour_ago.replace(minute=0, second=0, microsecond=0)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=missed)
    beats.start()
    wait_for(lambda: jobs_of(str(schedule.pk)), "the missed due time's job")
    time.sleep(1)  # five more ticks: nothing more may fire
    beats.stop()
    (job,) = jobs_of(str(schedule.pk))
    assert job.request_id.endswith(f"{missed:%Y%m%dT%H%M%SZ}")
    schedule.refresh_from_db()
    assert schedule.next_run_at is not None and schedule.next_run_at > timezone.now() + timedelta(hours=20)
    assert beats.fired() == 1
