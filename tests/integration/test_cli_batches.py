"""`jobsctl batch`, the real client process, against the real stack (Daphne, a Celery worker, Redis, an SMTP
sink): batches from a file followed to their end, a sequence whose step reads an earlier step's result, a
batch too large for one frame sent in parts, and `list --batch` / `show` of a batch."""

from __future__ import annotations

import json
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tasks.models import Job
from tests.integration.cli_process import Cli
from tests.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BATCH_RUNNING = re.compile(r"batch ([0-9a-f-]{36}) running")
ACCEPTED = re.compile(r"batch ([0-9a-f-]{36}) accepted \((\d+) jobs, (\w+)(?:, sent in (\d+) parts)?\)")


def batch_file(tmp_path: Path, content: Any) -> str:
    path = tmp_path / f"batch-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return str(path)


def countdown(steps: int, **more: int) -> dict[str, Any]:
    return {"kind": "demo.countdown", "params": {"steps": steps, "interval_ms": 20, **more}}


def counts(**given: int) -> dict[str, int]:
    every = {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0, **given}
    return {"total": sum(every.values()), **every}


def children(batch_id: str) -> list[Job]:
    return list(Job.objects.filter(parent_id=uuid.UUID(batch_id)).order_by("position"))


def test_a_parallel_batch_from_a_file_runs_every_job_and_exits_0_with_the_final_counts(
    cli: Cli, tmp_path: Path
) -> None:
    path = batch_file(tmp_path, [countdown(steps) for steps in (2, 3, 4, 5)])
    done = cli.run("batch", path, "--title", "Four countdowns")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == counts(succeeded=4)
    batch_id, size, mode, _ = ACCEPTED.search(done.stderr).groups()  # type: ignore[union-attr]
    assert (size, mode) == ("4", "parallel")
    assert f"batch {batch_id} succeeded: 4/4 finished: 0 queued, 0 running, 4 succeeded, 0 failed" in done.stderr
    batch = Job.objects.get(pk=batch_id)
    assert (batch.kind, batch.status, batch.params["title"]) == ("batch", "succeeded", "Four countdowns")
    assert [(job.status, job.result) for job in children(batch_id)] == [
        ("succeeded", {"steps": n}) for n in (2, 3, 4, 5)
    ]


def test_a_failed_child_exits_1_and_list_and_show_describe_the_batch(cli: Cli, tmp_path: Path) -> None:
    path = batch_file(tmp_path, {"title": "One fails", "jobs": [countdown(2), countdown(3, fail_at=2)]})
    done = cli.run("batch", path, "--json")
    assert done.returncode == 1, done.stderr
    batch = json.loads(done.stdout)  # --json: the whole final batch
    assert (batch["status"], batch["batch"]) == ("failed", counts(succeeded=1, failed=1))
    assert batch["error"]["code"] == "children_failed"

    listed = cli.run("list", "--batch", batch["id"][:8], "--json")  # a prefix is enough
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [(job["params"]["steps"], job["status"], job["parent_id"]) for job in jobs] == [
        (2, "succeeded", batch["id"]),
        (3, "failed", batch["id"]),
    ]
    table = cli.run("list", "--parent", batch["id"]).stdout
    assert re.search(rf"{jobs[1]['id']}\s+demo.countdown\s+failed", table), table
    shown = cli.run("show", batch["id"])
    assert shown.returncode == 0, shown.stderr
    assert "batch:     2 jobs, parallel: 0 queued, 0 running, 1 succeeded, 1 failed, 0 cancelled" in shown.stdout


def test_a_sequence_step_gets_an_earlier_steps_result_in_its_text(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    to = f"counted.{uuid.uuid4().hex[:8]}@example.com"
    body = "The count reached {{ steps.0.result.steps }} steps.\n"
    email = {"kind": "email.send", "params": {"to": [to], "subject": "Counted", "body": body}}
    path = batch_file(tmp_path, {"title": "Count, then mail", "mode": "sequence", "jobs": [countdown(3), email]})
    done = cli.run("batch", path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == counts(succeeded=2)
    assert ACCEPTED.search(done.stderr).group(3) == "sequence"  # type: ignore[union-attr]
    (received,) = smtp_server.to(to)
    assert received.body == "The count reached 3 steps.\n"


def test_a_batch_too_large_for_one_frame_is_sent_in_parts_and_accepted_whole(cli: Cli, tmp_path: Path) -> None:
    # Children that count for a while, so the batch is still unfinished when it is cancelled below.
    jobs = [{"kind": "demo.countdown", "params": {"steps": 1 + i, "interval_ms": 1000}} for i in range(2000)]
    path = batch_file(tmp_path, jobs)
    assert Path(path).stat().st_size > 2 * 64 * 1024
    done = cli.run("batch", path, "--detach", "--json")
    assert done.returncode == 0, done.stderr
    batch = json.loads(done.stdout)
    assert batch["batch"]["total"] == 2000 and batch["params"]["size"] == 2000
    parts = ACCEPTED.search(done.stderr).group(4)  # type: ignore[union-attr]
    assert parts is not None and int(parts) >= 3, done.stderr
    assert [job.params["steps"] for job in children(batch["id"])] == list(range(1, 2001))  # each once, in order

    cancelled = cli.run("cancel", batch["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"batch {batch['id']} cancelled" in cancelled.stderr
    assert Job.objects.get(pk=batch["id"]).status == "cancelled"
    assert not Job.objects.filter(parent_id=uuid.UUID(batch["id"]), status__in=("queued", "running")).exists()


def test_invalid_jobs_exit_2_naming_each_job_and_field(cli: Cli, tmp_path: Path) -> None:
    path = batch_file(tmp_path, [countdown(2), countdown(0), {"kind": "no.such.kind", "params": {}}])
    done = cli.run("batch", path)
    assert done.returncode == 2
    assert "jobsctl: error: invalid_params:" in done.stderr
    lines = done.stderr.splitlines()
    named = [line.split(":")[0].strip() for line in lines if line.startswith("  jobs.")]
    assert named == ["jobs.1.steps [demo.countdown]", "jobs.2.kind [no.such.kind]"], done.stderr
    assert not Job.objects.exists()


def test_ctrl_c_then_yes_cancels_the_batch_and_exits_3(cli: Cli, tmp_path: Path) -> None:
    long = {"kind": "demo.countdown", "params": {"steps": 600, "interval_ms": 100}}
    follower = cli.start("batch", batch_file(tmp_path, [long, long]))
    batch_id = follower.wait_for(BATCH_RUNNING).group(1)
    follower.process.send_signal(signal.SIGINT)
    assert follower.process.stdin is not None
    follower.process.stdin.write("y\n")
    follower.process.stdin.close()
    code, out, err = follower.finish()
    assert code == 3, err
    assert f"Cancel batch {batch_id}? [y/N]" in err
    assert json.loads(out) == counts(cancelled=2)
    assert [job.status for job in children(batch_id)] == ["cancelled", "cancelled"]
