"""A job may report progress a million times; the reporter stores and publishes about ten a second."""

from __future__ import annotations

import itertools
import time

import pytest
from django.contrib.auth.models import User

from tasks import services
from tasks.errors import JobCancelled
from tasks.models import Job, build_progress
from tasks.progress import ProgressReporter
from tests.conftest import Published

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running_job(user: User, published: Published) -> Job:
    job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
    started = services.start(str(job.pk), job.celery_task_id)
    assert started is not None
    published.clear()
    return started


def test_a_hot_loop_is_coalesced_to_a_few_frames(running_job: Job, published: Published) -> None:
    reporter = ProgressReporter(str(running_job.pk), interval=0.1)
    started = time.monotonic()
    for step in range(1, 200_001):
        reporter.report(step, 200_000)
    elapsed = time.monotonic() - started
    final = reporter.close()
    assert final is not None and final["current"] == 200_000
    # The first report goes out at once, then at most one per interval.
    assert 1 <= len(published) <= elapsed / 0.1 + 2
    assert published.types() == ["job.progress"] * len(published)
    assert published[0][1]["progress"]["current"] == 1


def test_the_first_report_goes_out_at_once(running_job: Job, published: Published) -> None:
    reporter = ProgressReporter(str(running_job.pk), interval=60)
    reporter.report(1, 10, stage="copying", message="1 of 10")
    assert [message["progress"] for _, message in published] == [
        {"current": 1, "total": 10, "percent": 10.0, "stage": "copying", "message": "1 of 10"}
    ]
    reporter.close()


def test_a_held_report_goes_out_when_the_job_goes_quiet(running_job: Job, published: Published) -> None:
    reporter = ProgressReporter(str(running_job.pk), interval=0.2)
    reporter.report(1, 3)
    reporter.report(2, 3)  # held: inside the interval, and the job then goes quiet
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [message["progress"]["current"] for _, message in published] == [1, 2]
    running_job.refresh_from_db()
    assert running_job.progress["current"] == 2
    reporter.close()


def test_a_cancelled_job_stops_at_its_next_report(user: User, running_job: Job) -> None:
    reporter = ProgressReporter(str(running_job.pk), interval=0)
    reporter.report(1, 5)
    services.cancel(user, str(running_job.pk))
    with pytest.raises(JobCancelled):
        reporter.report(2, 5)
    with pytest.raises(JobCancelled):
        reporter.report(3, 5)


@pytest.mark.parametrize(
    ("current", "total", "percent"),
    [(0, 10, 0.0), (1, 3, 33.3), (10, 10, 100.0), (12, 10, 100.0), (5, None, None), (5, 0, None)],
)
def test_percent_is_derived_from_current_and_total(current: int, total: int | None, percent: float | None) -> None:
    assert build_progress(current, total, None, None)["percent"] == percent


def test_frames_are_never_closer_than_the_interval(running_job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's thread and the flush timer may both find a flush due; only one may send."""
    sent_at: list[float] = []
    save = services.save_progress

    def recording_save(job_id: str, progress: dict[str, object]) -> bool:
        sent_at.append(time.monotonic())
        return save(job_id, progress)

    monkeypatch.setattr(services, "save_progress", recording_save)
    reporter = ProgressReporter(str(running_job.pk), interval=0.05)
    deadline = time.monotonic() + 0.6
    step = 0
    while time.monotonic() < deadline:
        step += 1
        reporter.report(step, None)
        if step % 5000 == 0:
            time.sleep(0.01)  # quiet spells, so the flush timer gets its turns too
    reporter.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    assert len(sent_at) >= 3
    assert min(gaps) >= 0.05 * 0.99, sorted(gaps)[:3]


def test_in_a_run_the_started_frame_opens_the_first_interval(running_job: Job, published: Published) -> None:
    """A report right after job.started waits for the interval's end; one that the job outlives goes then."""
    reporter = ProgressReporter(str(running_job.pk), interval=0.3, after_frame=True)
    reporter.report(1, 3)
    reporter.report(2, 3)
    assert published == []  # nothing within the interval that job.started opened
    deadline = time.monotonic() + 5
    while not published and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [message["progress"]["current"] for _, message in published] == [2]
    reporter.close()


def test_a_job_shorter_than_the_interval_sends_no_progress_frame(running_job: Job, published: Published) -> None:
    reporter = ProgressReporter(str(running_job.pk), interval=60, after_frame=True)
    for step in range(1, 11):
        reporter.report(step, 10)
    final = reporter.close()
    assert published == [] and reporter.flushes == 0
    assert final is not None and final["current"] == 10  # the terminal event carries it
