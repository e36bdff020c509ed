"""jobsctl over the history: `list` with filters and paging (job.list), `logs -f` following a running job's
log, `retry --all-failed` (job.bulk), and the server's time-left estimate on its progress lines."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import User

from tasks import history
from tasks.models import Job
from tests.integration.cli_process import Cli
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def failed_jobs(owner: User, count: int, kind: str = "demo.countdown") -> None:
    jobs = []
    for n in range(count):
        job_id, request_id, params = uuid.uuid4(), f"{kind}-{n}", {"steps": 1}
        jobs.append(
            Job(id=job_id, owner=owner, request_id=request_id, kind=kind, params=params, status="failed",
                search_text=history.search_text(job_id, request_id, params))
        )  # fmt: skip
    Job.objects.bulk_create(jobs)


def test_list_filters_and_pages_through_the_history(cli: Cli, user: User) -> None:
    failed_jobs(user, 130)
    failed_jobs(user, 5, kind="email.send")
    listed = cli.run("list", "--status", "failed", "--kind", "demo.countdown", "--limit", "120", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert len(jobs) == 120 and len({job["id"] for job in jobs}) == 120  # two pages, no repeat
    assert {job["kind"] for job in jobs} == {"demo.countdown"}
    searched = json.loads(cli.run("list", "--search", "email.send-3", "--json").stdout)
    assert [job["request_id"] for job in Job.objects.filter(pk__in=[j["id"] for j in searched]).values()] == [
        "email.send-3"
    ]
    assert json.loads(cli.run("list", "--since", "1d", "--json", "--limit", "500").stdout).__len__() == 135
    bad = cli.run("list", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_show_finds_an_old_job_by_the_start_of_its_id(cli: Cli, user: User) -> None:
    failed_jobs(user, 40)  # the hello's snapshot holds only the 20 newest finished ones
    oldest = Job.objects.filter(owner=user).order_by("created_at", "id").first()
    assert oldest is not None
    prefix = str(oldest.pk)[:8]
    shown = cli.run("show", prefix, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == str(oldest.pk)
    unknown = cli.run("show", "ffff0000")
    assert unknown.returncode == 2 and "not_found" in unknown.stderr


def test_retry_all_failed_of_a_kind(cli: Cli, user: User) -> None:
    failed_jobs(user, 3)
    failed_jobs(user, 2, kind="email.send")
    done = cli.run("retry", "--all-failed", "--kind", "demo.countdown")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    statuses = sorted(Job.objects.values_list("kind", "attempt"))
    assert statuses == [("demo.countdown", 2)] * 3 + [("email.send", 1)] * 2


def test_logs_follow_prints_the_lines_as_the_job_writes_them(cli: Cli, live_stack: LiveStack) -> None:
    submitted = cli.run(
        "--json", "submit", "demo.countdown", "--no-follow",
        "--param", "steps=20", "--param", "interval_ms=150", "--param", "log_progress=true",
    )  # fmt: skip
    job_id = json.loads(submitted.stdout)["id"]
    following = cli.start("logs", job_id, "-f")
    code, out, err = following.finish(timeout=60)
    assert code == 0, err
    printed = [line.split(maxsplit=3)[-1] for line in out.splitlines()]  # date, time, level, text
    assert printed == [f"Reached step {step} of 20." for step in range(2, 21, 2)]
    again = cli.run("logs", job_id)  # once it finished: the lines, and no waiting
    assert again.returncode == 0 and again.stdout == out
