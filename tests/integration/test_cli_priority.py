"""`jobsctl --priority`: the real client process against the live stack sends the priority of a job and of
a batch (its jobs too), and `show` prints it."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from tasks.models import Job
from tests.integration.cli_process import Cli

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_job_and_a_batch_go_with_the_priority_given(cli: Cli, tmp_path: Path) -> None:
    done = cli.run("submit", "demo.countdown", "--param", "steps=1", "--priority", "high", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["priority"] == "high" and Job.objects.get(pk=job["id"]).priority == "high"
    assert re.search(r"^priority: +high$", cli.run("show", job["id"]).stdout, re.MULTILINE)

    path = tmp_path / "batch.json"
    path.write_text(json.dumps([{"kind": "demo.countdown", "params": {"steps": 1}}] * 2), encoding="utf-8")
    done = cli.run("batch", str(path), "--priority", "low", "--detach")
    assert done.returncode == 0, done.stderr
    batch_id = uuid.UUID(done.stdout.strip())
    assert {job.priority for job in Job.objects.filter(parent_id=batch_id)} | {
        Job.objects.get(pk=batch_id).priority
    } == {"low"}

    refused = cli.run("submit", "demo.countdown", "--param", "steps=1", "--priority", "urgent")
    assert refused.returncode == 2 and "invalid choice: 'urgent'" in refused.stderr
