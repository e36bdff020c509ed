"""Flower, started as `runstack` starts it, sees each job's Celery task, asks for its credentials,
and the dashboard links staff to it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from playwright.async_api import Browser, expect

from core import stack
from tasks.models import Job
from tests.factories import PASSWORD, UserFactory
from tests.integration.client import is_terminal_event, jobs_client, login
from tests.integration.conftest import LiveStack

if TYPE_CHECKING:
    from tests.integration.browser import OpenDashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="module"),
]

FLOWER_AUTH = "ops:flower-test-password"
TASK_EVENTS_ON = b"Events of group {task} enabled by remote."  # what a worker logs when Flower turns them on


@dataclass
class Flower:
    url: str
    auth: str
    pid: int


def http_get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start(command: list[str], env: dict[str, str], log_path: Any) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def receives_worker_events(url: str) -> bool:
    """Flower's metrics mark a worker online only from the worker's own events (heartbeats)."""
    status, body = http_get(f"{url}/metrics")
    return status == 200 and any(
        line.startswith("flower_worker_online{") and line.endswith(" 1.0") for line in body.decode().splitlines()
    )


@pytest.fixture(scope="module")
def flower(live_stack: LiveStack) -> Iterator[Flower]:
    """Flower on the live stack's Redis, with the live stack's settings, bound to 127.0.0.1 with basic auth."""
    port = stack.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**live_stack.env, "FLOWER_BASIC_AUTH": FLOWER_AUTH}
    process = start(stack.flower_command("127.0.0.1", port), env, live_stack.logs / "flower.log")
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Flower", timeout=60, process=process)
        stack.wait_until(lambda: http_get(f"{url}/healthcheck") == (200, b"OK"), "Flower healthcheck", 30, process)
        # Flower hears only events sent after it listens: wait until it hears the worker.
        stack.wait_until(lambda: receives_worker_events(url), "Flower receiving worker events", 30, process)
        # Workers start with task events off (CELERY_TASK_EVENTS): Flower turns them on by itself, every
        # 5 s, and the worker logs it. The tests below then prove Flower sees the jobs' tasks.
        worker_log = live_stack.logs / "worker.log"
        stack.wait_until(lambda: TASK_EVENTS_ON in worker_log.read_bytes(), "Flower enabling task events", 30, process)
        yield Flower(url, FLOWER_AUTH, process.pid)
    finally:
        stack.stop([process])


def flower_task(flower: Flower, task_id: str) -> dict[str, Any] | None:
    status, body = http_get(f"{flower.url}/api/tasks", flower.auth)
    assert status == 200, body[:200]
    task: dict[str, Any] | None = json.loads(body).get(task_id)
    return task


async def wait_for_flower_task(flower: Flower, task_id: str, state: str) -> dict[str, Any]:
    def seen() -> bool:
        task = flower_task(flower, task_id)
        return task is not None and task.get("state") == state

    await asyncio.to_thread(stack.wait_until, seen, f"Flower listing task {task_id} as {state}", 30)
    task = flower_task(flower, task_id)
    assert task is not None
    return task


async def test_flower_lists_a_jobs_task_and_refuses_requests_without_credentials(
    flower: Flower, live_stack: LiveStack, user: User
) -> None:
    cookie = await asyncio.to_thread(login, live_stack.base_url, user.username, PASSWORD)
    async with jobs_client(live_stack.ws_url, cookie, live_stack.base_url) as client:
        job = await client.submit("demo.countdown", {"steps": 3, "interval_ms": 50})
        events = await client.receive_until(is_terminal_event(job["id"]))
    finished = events[-1]["job"]
    assert finished["status"] == "succeeded"
    row = await database_sync_to_async(Job.objects.get)(pk=job["id"])
    assert finished["task_id"] == job["task_id"] == row.celery_task_id != ""

    task = await wait_for_flower_task(flower, row.celery_task_id, "SUCCESS")
    assert task["name"] == "demo.countdown"
    assert task["uuid"] == row.celery_task_id
    # The broker and Flower see only the job id, never the params.
    assert job["id"] in task["args"] and "steps" not in task["args"]

    for path in ("/api/tasks", "/", f"/task/{row.celery_task_id}"):
        assert (await asyncio.to_thread(http_get, flower.url + path))[0] == 401, path
        assert (await asyncio.to_thread(http_get, flower.url + path, "ops:wrong"))[0] == 401, path


async def test_flowers_password_is_not_on_its_command_line(flower: Flower) -> None:
    """Any local user can read a command line (`ps`); the password travels in Flower's environment."""
    password = flower.auth.split(":", 1)[1]
    command_line = proc_file(flower.pid, "cmdline")
    assert b"flower" in command_line
    assert password.encode() not in command_line
    assert f"FLOWER_BASIC_AUTH={flower.auth}".encode() in proc_file(flower.pid, "environ").split(b"\0")


def proc_file(pid: int, name: str) -> bytes:
    """/proc/<pid>/<name>: `cmdline` any local user can read, `environ` only the process's owner."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


@pytest.fixture(scope="module")
def staff_site(live_stack: LiveStack, flower: Flower) -> Iterator[str]:
    """A second Daphne of the live stack whose settings point FLOWER_URL at the test's Flower."""
    port = stack.free_port()
    env = {**live_stack.env, "FLOWER_URL": flower.url}
    process = start(stack.daphne_command("127.0.0.1", port), env, live_stack.logs / "daphne-flower-url.log")
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne with FLOWER_URL", 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop([process])


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True)


@pytest.mark.browser
async def test_staff_follow_a_jobs_flower_link_to_its_task(
    browser: Browser, dashboard_at: OpenDashboard, staff_site: str, flower: Flower, staff: User
) -> None:
    dashboard = await (await dashboard_at(staff_site)).log_in(staff.username)
    job = await dashboard.start_countdown(steps=3, interval_ms=50)
    await dashboard.wait_status(job, "succeeded")
    row = await database_sync_to_async(Job.objects.get)(pk=await job.get_attribute("data-job-id"))
    link = job.get_by_role("link", name="This job's Celery task in Flower")
    await expect(link).to_have_attribute("href", f"{flower.url}/task/{row.celery_task_id}")
    await expect(dashboard.page.locator(".topbar").get_by_role("link", name="Flower")).to_have_attribute(
        "href", f"{flower.url}/"
    )

    # The link leads to the task in Flower, past its basic auth.
    await wait_for_flower_task(flower, row.celery_task_id, "SUCCESS")
    user, password = flower.auth.split(":", 1)
    operator = await browser.new_context(http_credentials={"username": user, "password": password})
    try:
        page = await operator.new_page()
        response = await page.goto(f"{flower.url}/task/{row.celery_task_id}")
        assert response is not None and response.status == 200
        await expect(page.locator("body")).to_contain_text(row.celery_task_id)
        await expect(page.locator("body")).to_contain_text("demo.countdown")
    finally:
        await operator.close()


@pytest.mark.browser
async def test_the_dashboard_shows_no_flower_link_to_users_who_are_not_staff(
    dashboard_at: OpenDashboard, staff_site: str, user: User
) -> None:
    dashboard = await (await dashboard_at(staff_site)).log_in(user.username)
    job = await dashboard.start_countdown(steps=1)
    await dashboard.wait_status(job, "succeeded")
    await expect(dashboard.page.get_by_role("link", name="Flower")).to_have_count(0)
    await expect(dashboard.page.locator("#dashboard")).to_have_attribute("data-flower-url", "")
