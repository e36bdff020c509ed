"""jobsctl, the real client process, against the real stack (Daphne, a Celery worker, Redis).

Each test runs `python -m jobsctl ...` with JOBS_URL and a token made in the
test database, and judges it as a script would: by exit code, stdout and stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from accounts.models import ApiToken
from jobsctl.local import TOKEN_NAME
from tasks.models import Job
from tests.integration.cli_process import Cli

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNNING = re.compile(r"job ([0-9a-f-]{36}) running")
# Long enough to be caught running, and stopped well before the end by each test that uses it.
LONG = ("submit", "demo.countdown", "--param", "steps=600", "--param", "interval_ms=100")


def test_a_countdown_exits_0_and_prints_its_result(cli: Cli) -> None:
    done = cli.run("submit", "demo.countdown", "--param", "steps=3", "--param", "interval_ms=20")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"steps": 3}
    assert "succeeded" in done.stderr


def test_a_failing_countdown_exits_1_and_prints_the_error_code(cli: Cli) -> None:
    done = cli.run("submit", "demo.countdown", "--params-json", '{"steps": 3, "fail_at": 2}')
    assert done.returncode == 1, done.stderr
    assert "failed: demo_failure:" in done.stderr
    assert done.stdout == ""


def test_bad_params_exit_2_with_invalid_params_and_the_field(cli: Cli) -> None:
    done = cli.run("submit", "demo.countdown", "--param", "steps=0")
    assert done.returncode == 2
    assert "invalid_params" in done.stderr
    assert "steps:" in done.stderr


def test_a_wrong_token_exits_2_with_a_clear_message(cli: Cli) -> None:
    done = cli.run("list", env=cli.env(JOBS_TOKEN="jobs_not-a-real-token"))
    assert done.returncode == 2
    assert "refused the API token" in done.stderr and "4401" in done.stderr
    assert "Traceback" not in done.stderr


def test_list_and_show_describe_the_users_jobs(cli: Cli) -> None:
    finished = json.loads(cli.run("--json", "submit", "demo.countdown", "--param", "steps=2").stdout)
    listed = cli.run("list")
    assert listed.returncode == 0
    assert re.search(rf"{finished['id']}\s+demo.countdown\s+succeeded\s+100%", listed.stdout), listed.stdout
    assert finished["id"] in [job["id"] for job in json.loads(cli.run("list", "--json").stdout)]

    shown = cli.run("show", finished["id"][:8])  # a prefix is enough
    assert shown.returncode == 0, shown.stderr
    assert "status:    succeeded" in shown.stdout and '{"steps": 2}' in shown.stdout
    assert json.loads(cli.run("show", finished["id"], "--json").stdout)["result"] == {"steps": 2}
    missing = cli.run("show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2 and "not_found" in missing.stderr


def test_cancel_from_another_client_ends_the_followed_job_with_exit_3(cli: Cli) -> None:
    follower = cli.start(*LONG)
    job_id = follower.wait_for(RUNNING).group(1)
    cancelled = cli.run("cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == job_id
    code, _, err = follower.finish()
    assert code == 3, err
    assert f"job {job_id} cancelled" in err
    again = cli.run("cancel", job_id)
    assert again.returncode == 2 and "conflict" in again.stderr


def test_retry_runs_a_failed_job_again_as_a_new_attempt(cli: Cli) -> None:
    failing = ("submit", "demo.countdown", "--param", "steps=2", "--param", "fail_at=1", "--json")
    failed = json.loads(cli.run(*failing).stdout)
    retried = cli.run("retry", failed["id"], "--follow", "--json")
    assert retried.returncode == 1, retried.stderr  # fail_at fails every attempt
    job = json.loads(retried.stdout)
    assert (job["id"], job["attempt"], job["status"]) == (failed["id"], 2, "failed")


def test_no_follow_prints_the_job_id_at_once(cli: Cli) -> None:
    done = cli.run("submit", "demo.countdown", "--param", "steps=1", "--no-follow")
    assert done.returncode == 0, done.stderr
    assert Job.objects.filter(pk=done.stdout.strip()).exists()


def test_email_sends_to_every_recipient(cli: Cli) -> None:
    done = cli.run("email", "--to", "a@example.com", "--to", "b@example.com", "--subject", "Hi", "--body", "Hello")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sent": 2, "failed": []}


def test_process_uploads_a_file_and_checksums_it(cli: Cli, tmp_path: Path) -> None:
    content = os.urandom(300_000)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    done = cli.run("process", str(path), "--operation", "checksum")
    assert done.returncode == 0, done.stderr
    assert "uploaded data.bin (300000 bytes)" in done.stderr
    assert json.loads(done.stdout) == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "md5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
        "size": len(content),
    }


def test_ctrl_c_then_yes_cancels_the_job_and_exits_3(cli: Cli) -> None:
    follower = cli.start(*LONG)
    job_id = follower.wait_for(RUNNING).group(1)
    follower.process.send_signal(signal.SIGINT)
    assert follower.process.stdin is not None
    follower.process.stdin.write("y\n")
    follower.process.stdin.close()
    code, _, err = follower.finish()
    assert code == 3, err
    assert f"Cancel job {job_id}? [y/N]" in err
    assert Job.objects.get(pk=job_id).status == "cancelled"


def test_ctrl_c_then_no_leaves_the_job_running_and_exits_130(cli: Cli) -> None:
    follower = cli.start(*LONG)
    job_id = follower.wait_for(RUNNING).group(1)
    follower.process.send_signal(signal.SIGINT)
    assert follower.process.stdin is not None
    follower.process.stdin.write("n\n")
    follower.process.stdin.close()
    code, _, err = follower.finish()
    assert code == 130, err
    assert Job.objects.get(pk=job_id).status == "running"
    assert cli.run("cancel", job_id).returncode == 0  # tidy up: the worker is shared


def test_user_makes_a_temporary_token_and_revokes_it(cli: Cli, user: User) -> None:
    # Inside the project (Django importable, the same database): no token to pass.
    env = {**cli.stack.env, "JOBS_URL": cli.stack.base_url}
    env.pop("JOBS_TOKEN", None)
    done = cli.run("--user", user.username, "list", env=env)
    assert done.returncode == 0, done.stderr
    temporary = ApiToken.objects.get(user=user, name=TOKEN_NAME)
    assert temporary.revoked_at is not None
