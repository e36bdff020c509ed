"""A job's log (Context.log): numbered lines written in batches, the last 1,000 (at most 256 KiB) kept,
and the new lines announced after each write."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.dispatch import receiver
from pytest_django.fixtures import Settings

from tasks import events, logs, runner, services
from tasks.models import Job, JobLogLine

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def announced() -> Any:
    """The lines of every job_logged event, in order."""
    seen: list[dict[str, Any]] = []

    @receiver(events.job_logged, weak=False)
    def collect(sender: Any, lines: list[dict[str, Any]], **fields: Any) -> None:
        seen.extend(lines)

    yield seen
    events.job_logged.disconnect(collect)


def job_of(user: User) -> Job:
    job, _ = services.submit(user, "r", "demo.countdown", {"steps": 1})
    return job


def kept(job: Job) -> list[tuple[int, str, str]]:
    return list(JobLogLine.objects.filter(job=job).values_list("n", "level", "text"))


def test_lines_are_numbered_from_one_and_announced_after_the_write(user: User, announced: list[Any]) -> None:
    job = job_of(user)
    buffer = logs.LogBuffer(str(job.pk), interval=60)
    buffer.write("info", "first")
    buffer.write("warning", "second")
    assert kept(job) == []  # nothing written before the interval ends or the run closes
    buffer.close()
    assert kept(job) == [(1, "info", "first"), (2, "warning", "second")]
    assert [(line["n"], line["level"], line["text"]) for line in announced] == kept(job)
    assert announced[0]["at"].endswith("Z")
    buffer.write("error", "third")
    buffer.close()
    assert kept(job)[-1] == (3, "error", "third") and Job.objects.get(pk=job.pk).log_count == 3


def test_the_timer_writes_a_batch_once_the_interval_is_over(user: User) -> None:
    job = job_of(user)
    buffer = logs.LogBuffer(str(job.pk), interval=0.05)
    for n in range(5):
        buffer.write("info", f"line {n}")
    deadline = time.monotonic() + 5
    while len(kept(job)) < 5:
        assert time.monotonic() < deadline, "the batch was never written"
        time.sleep(0.02)
    assert [n for n, _, _ in kept(job)] == [1, 2, 3, 4, 5]


def test_only_the_last_thousand_lines_are_kept_and_the_rest_counted(user: User) -> None:
    job = job_of(user)
    buffer = logs.LogBuffer(str(job.pk), interval=60)
    for n in range(1, 1_501):
        buffer.write("info", f"line {n}")
    buffer.close()
    lines = kept(job)
    assert len(lines) == logs.MAX_LINES
    assert (lines[0][0], lines[-1][0]) == (501, 1500)  # the buffer itself dropped the oldest, keeping their numbers
    assert Job.objects.get(pk=job.pk).log_count == 1500


def test_the_log_is_trimmed_to_its_byte_limit(user: User, settings: Settings) -> None:
    job = job_of(user)
    buffer = logs.LogBuffer(str(job.pk), interval=60)
    line = "x" * 3000  # 100 lines of 3,000 bytes exceed 256 KiB
    for _ in range(100):
        buffer.write("info", line)
    buffer.close()
    lines = kept(job)
    assert len(lines) == logs.MAX_BYTES // 3000 and lines[-1][0] == 100
    assert sum(len(text) for _, _, text in lines) <= logs.MAX_BYTES


def test_a_very_long_line_is_cut_and_a_wrong_level_refused(user: User) -> None:
    job = job_of(user)
    buffer = logs.LogBuffer(str(job.pk), interval=60)
    buffer.write("info", "y" * 10_000)
    buffer.close()
    ((_, _, text),) = kept(job)
    assert len(text) == logs.MAX_LINE_CHARS and text.endswith("…")
    with pytest.raises(ValueError, match="log level"):
        buffer.write("debug", "no")  # type: ignore[arg-type]


def test_a_kind_s_lines_are_all_written_before_its_final_state(user: User, settings: Settings) -> None:
    settings.JOBS_PROGRESS_INTERVAL = 60  # so only the runner's close can write them
    job, _ = services.submit(user, "r", "test.table", {"rows": 30})
    runner.run_job(str(job.pk), job.celery_task_id)
    assert [text for _, _, text in kept(job)] == ["10 rows written.", "20 rows written.", "30 rows written."]
