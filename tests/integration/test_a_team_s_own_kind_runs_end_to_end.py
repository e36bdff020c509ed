"""A kind written only against the public API, in an app of its own (tests/testkinds: `test.table`), runs
through a real Daphne and a real Celery worker: submit, progress, log lines, its artifact downloaded, cancel;
its task goes to the queue it names, which the worker serves without being told (-Q)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from accounts import tokens
from tasks.models import JobLogLine
from tests.integration.client import is_terminal_event, jobs_client, login
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SQUARES = "n,square\n" + "".join(f"{n},{n * n}\n" for n in range(1, 26))


def fetch(url: str, token: str) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers["Content-Disposition"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), ""


async def test_submit_progress_logs_artifact_and_cancel(live_stack: LiveStack, user: User, other_user: User) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, "correct horse battery staple")
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        assert "test.table" in client.hello["kinds"]
        job = await client.submit("test.table", {"rows": 25, "interval_ms": 10})
        events = await client.receive_until(is_terminal_event(job["id"]), timeout=60)

        final = events[-1]
        assert final["type"] == "job.succeeded", final
        assert final["job"]["result"] == {"rows": 25, "owner": user.username}
        assert [event["type"] for event in events[:2]] == ["job.queued", "job.started"]
        assert any(event["type"] == "job.progress" for event in events)
        (artifact,) = final["job"]["artifacts"]
        assert artifact["name"] == "squares.csv" and artifact["size"] == len(SQUARES)

        # A slow one, cancelled while it runs: it stops, and leaves no artifact.
        slow = await client.submit("test.table", {"rows": 500, "interval_ms": 20})
        await client.receive_until(lambda m: m["type"] == "job.progress" and m["job_id"] == slow["id"])
        await client.send({"type": "job.cancel", "job_id": slow["id"]})
        cancelled = (await client.receive_until(is_terminal_event(slow["id"])))[-1]
        assert cancelled["type"] == "job.cancelled" and cancelled["job"]["artifacts"] == []

    lines = await database_sync_to_async(list)(JobLogLine.objects.filter(job_id=job["id"]).values_list("n", "text"))
    assert lines == [(1, "10 rows written."), (2, "20 rows written.")]

    _, mine = await database_sync_to_async(tokens.create)(user, "download")
    _, theirs = await database_sync_to_async(tokens.create)(other_user, "download")
    url = f"{live_stack.base_url}/api/artifacts/{artifact['id']}/"
    status, body, disposition = await asyncio.to_thread(fetch, url, mine)
    assert (status, body.decode()) == (200, SQUARES)
    assert disposition == 'attachment; filename="squares.csv"'
    assert (await asyncio.to_thread(fetch, url, theirs))[0] == 404


def test_jobsctl_submits_by_the_schema_and_downloads_the_files(
    live_stack: LiveStack, user: User, tmp_path: Path
) -> None:
    _, token = tokens.create(user, "cli")
    env = {**os.environ, "JOBS_URL": live_stack.base_url, "JOBS_TOKEN": token}

    def jobsctl(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jobsctl", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)

    listed = jobsctl("kinds")
    assert listed.returncode == 0, listed.stderr
    assert "test.table" in listed.stdout and "--param rows=…  integer, required" in listed.stdout
    # "25" becomes the integer the schema asks for; --file fills a field that takes an upload.
    done = jobsctl("--json", "submit", "test.table", "--param", "rows=25")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    saved = jobsctl("download", job["id"], "--out", str(tmp_path))
    assert saved.returncode == 0, saved.stderr
    assert Path(saved.stdout.strip()).read_text() == SQUARES
    again = jobsctl("download", job["id"], "--out", str(tmp_path))
    assert Path(again.stdout.strip()).name == "squares (2).csv"  # never over a file already there

    data = tmp_path / "people.csv"
    data.write_text("name,age\nada,36\n")
    processed = jobsctl("submit", "file.process", "--file", f"upload_id={data}", "--param", "operation=csv.summary")
    assert processed.returncode == 0, processed.stderr
    assert json.loads(processed.stdout)["rows"] == 1
    wrong = jobsctl("submit", "test.table", "--param", "rows=many")
    assert wrong.returncode == 2 and "rows takes an integer" in wrong.stderr
