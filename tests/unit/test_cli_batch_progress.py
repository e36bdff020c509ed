"""Following a batch: one progress line with its counts (from the batch's job.progress `batch` field), the
final counts in words on stderr and as JSON on stdout, and `show` of a batch printing them."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from jobsctl.display import Display, print_job, print_outcome
from jobsctl.jobs import Tracker


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def counts(queued: int, running: int, succeeded: int, failed: int = 0, cancelled: int = 0) -> dict[str, int]:
    total = queued + running + succeeded + failed + cancelled
    return {"total": total, "queued": queued, "running": running, "succeeded": succeeded, "failed": failed,
            "cancelled": cancelled}  # fmt: skip


def batch(status: str, seq: int, **fields: Any) -> dict[str, Any]:
    params = {"title": "Nightly", "mode": "parallel", "size": 10}
    progress = {"current": 0, "total": 10}
    job = {"id": "b1", "kind": "batch", "status": status, "seq": seq, "params": params, "progress": progress}
    return {**job, "batch": counts(10, 0, 0), **fields}


def test_the_batch_progress_event_moves_its_counts() -> None:
    tracker = Tracker(batch("running", 3))
    event = {"type": "job.progress", "job_id": "b1", "seq": 4, "progress": {"current": 6, "total": 10},
             "eta_seconds": None, "batch": counts(2, 2, 5, 1)}  # fmt: skip
    assert tracker.apply(event)
    assert tracker.job["batch"] == counts(2, 2, 5, 1) and tracker.job["progress"]["current"] == 6
    assert not tracker.apply({**event, "seq": 4, "batch": counts(0, 0, 10)})  # not newer: ignored


def test_without_a_terminal_the_line_gives_finished_of_total_and_every_count() -> None:
    stream = io.StringIO()
    display = Display(stream)
    display.update(batch("running", 4, batch=counts(2, 2, 5, 1)))
    assert stream.getvalue().splitlines() == [
        "batch b1 running",
        "  6/10 finished: 2 queued, 2 running, 5 succeeded, 1 failed, 0 cancelled",
    ]


def test_on_a_terminal_one_bar_shows_the_title_finished_of_total_and_the_counts() -> None:
    terminal = FakeTerminal()
    display = Display(terminal)
    display.update(batch("running", 4, batch=counts(2, 2, 5, 1)))
    display.update(batch("running", 5, batch=counts(0, 1, 8, 1)))
    last = terminal.getvalue().rsplit("\r", 1)[-1]
    assert last.startswith("Nightly:  90%|") and "| 9/10 [" in last
    assert "0 queued, 1 running, 8 succeeded, 1 failed, 0 cancelled]" in last
    display.close()


FAILED = {"code": "children_failed", "message": "1 of 10 jobs failed"}


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [("succeeded", None, "batch b1 succeeded: 10/10"), ("failed", FAILED, "batch b1 failed (children_failed): 10/10")],
)
def test_the_outcome_gives_the_final_counts(
    status: str, error: dict[str, str] | None, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    final = counts(0, 0, 9 if error else 10, 1 if error else 0)
    print_outcome(Display(), batch(status, 9, batch=final, error=error, result=None), as_json=False)
    out, err = capsys.readouterr()
    assert json.loads(out) == final
    assert said in err and "succeeded, " in err


def test_show_of_a_batch_prints_its_counts(capsys: pytest.CaptureFixture[str]) -> None:
    print_job(batch("running", 4, batch=counts(2, 2, 5, 1), created_at="2026-12-06T10:00:00.000Z"))
    assert (
        "batch:     10 jobs, parallel: 2 queued, 2 running, 5 succeeded, 1 failed, 0 cancelled"
        in capsys.readouterr().out
    )
