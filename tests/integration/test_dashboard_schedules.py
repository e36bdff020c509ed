"""Schedules in a real browser: made from the dashboard's form (a kind's own fields, a cron expression in a
timezone), refused with the bad field named beside it, listed live in a second tab of the same user,
paused, resumed and deleted in both, listed afresh after a reconnect, and a due time fired by the scheduler
shown as the row's last job, whose status follows the job to its end."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.async_api import Dialog, Locator, expect

from core import stack
from schedules.models import Schedule
from tasks.models import Job
from tests.integration.browser import ARTIFACTS, BROWSER_TESTS, JOB_TIMEOUT, Dashboard, SocketTap
from tests.integration.conftest import LiveStack

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
# What beat does every tick (schedules.beat); the live stack runs no beat. Unlike beat, this process ends at
# once: it waits for its frames to reach the channel layer (the exit's own flush gives up after 2 s, which a
# busy machine can take), and says whether they did.
FIRE_DUE = """
from schedules.scheduler import run_due
from transport.publisher import publisher
fired = run_due()
print(fired, publisher.flush(timeout=60))
"""
PARIS = ZoneInfo("Europe/Paris")
BAD_CRON = "Give a five-field cron expression (minute hour day month weekday), like '0 8 * * 1'."


def rows(tab: Dashboard) -> Locator:
    return tab.page.locator("#schedule-list > .schedule")


def empty_line(tab: Dashboard) -> Locator:
    return tab.page.locator("#schedules .schedule-empty")


def builder(tab: Dashboard) -> Locator:
    return tab.page.locator("#schedule-builder")


async def fill_schedule(tab: Dashboard, name: str, cron: str, steps: int | str = 1, zone: str = "Europe/Paris") -> None:
    form = builder(tab)
    await form.get_by_label("Kind of job").select_option("demo.countdown")
    await form.get_by_label("Steps").fill(str(steps))
    await form.get_by_label("Schedule name").fill(name)
    await form.get_by_label("Repeat (cron)").check()
    await form.get_by_label("Cron expression").fill(cron)
    await form.get_by_label("Timezone").fill(zone)


async def create_schedule(tab: Dashboard, name: str, cron: str = "0 8 * * 1") -> Locator:
    """Make a countdown schedule from the form; its row, once listed."""
    before = await rows(tab).count()
    await fill_schedule(tab, name, cron)
    await builder(tab).get_by_role("button", name="Create schedule").click()
    await expect(rows(tab)).to_have_count(before + 1)
    return rows(tab).filter(has_text=name)


@database_sync_to_async
def schedules() -> list[Schedule]:
    """Every schedule, as the database holds it."""
    return list(Schedule.objects.all())


async def shows_next_run(row: Locator, due: datetime | None) -> None:
    """The row's next run is `due` (in a <time>, written in the browser's time), or "—"."""
    next_run = row.locator(".schedule-next")
    if due is None:
        await expect(next_run).to_have_text("—")
        return
    # As the server writes times (UTC, milliseconds, "Z").
    iso = due.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    await expect(next_run.locator("time")).to_have_attribute("datetime", iso)
    await expect(next_run).not_to_have_text("—")


async def run_due(live_stack: LiveStack) -> int:
    """Fire the due schedules as beat does, in a process with the live stack's environment: its job goes to
    the stack's broker and the schedule's frame to the stack's channel layer (this process has neither)."""
    command = stack.python_command(str(MANAGE), "shell", "-c", FIRE_DUE)
    done = await asyncio.to_thread(
        subprocess.run, command, env=live_stack.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    fired, flushed = done.stdout.split()[-2:]
    assert flushed == "True", "the scheduler's frames did not reach the channel layer"
    return int(fired)


async def test_a_cron_schedule_made_from_the_form_is_listed_with_its_next_run_in_every_tab(
    dashboard: Dashboard, user: User
) -> None:
    await dashboard.log_in(user.username)
    other = await dashboard.another_tab()
    for tab in (dashboard, other):
        await expect(empty_line(tab)).to_have_text("No schedules yet.")
        await expect(rows(tab)).to_have_count(0)
    zone = builder(dashboard).get_by_label("Timezone")
    await expect(zone).to_have_value(await dashboard.page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"))
    await expect(builder(dashboard).get_by_label("Cron expression")).to_have_attribute("placeholder", "0 8 * * 1")
    await expect(builder(dashboard).locator("#schedule-cron-hint")).to_have_text("minute hour day month weekday")
    # Batches are not offered: a schedule submits one job.
    kinds = (
        await builder(dashboard)
        .get_by_label("Kind of job")
        .locator("option")
        .evaluate_all("options => options.map(option => option.value)")
    )
    assert "demo.countdown" in kinds and "batch" not in kinds, kinds

    row = await create_schedule(dashboard, "Monday countdown")
    (made,) = await schedules()
    assert made.kind == "demo.countdown" and made.params["steps"] == 1
    assert (made.cron, made.timezone, made.name) == ("0 8 * * 1", "Europe/Paris", "Monday countdown")
    assert made.next_run_at is not None and made.next_run_at > timezone.now()
    await expect(dashboard.page.locator("#announcer")).to_have_text("Schedule created.")
    await expect(builder(dashboard).get_by_label("Schedule name")).to_have_value("")

    # The tab that asked gets only its answer; the other tab the same frame: both list it alike.
    for tab in (dashboard, other):
        shown = rows(tab).filter(has_text="Monday countdown")
        await expect(rows(tab)).to_have_count(1)
        await expect(shown).to_have_attribute("data-schedule-id", str(made.pk))
        await expect(shown.locator(".schedule-kind")).to_have_text("Countdown")
        await expect(shown.locator(".schedule-when")).to_have_text("0 8 * * 1 (Europe/Paris)")
        await expect(shown.locator(".schedule-state")).to_have_text("Active")
        await expect(shown.locator(".schedule-last")).to_have_text("—")
        await shows_next_run(shown, made.next_run_at)
        await expect(empty_line(tab)).to_be_hidden()
    await expect(row.get_by_role("button", name="Pause schedule Monday countdown")).to_be_enabled()


async def test_a_refused_schedule_names_the_bad_field_beside_it_and_makes_nothing(
    dashboard: Dashboard, user: User
) -> None:
    await dashboard.log_in(user.username)
    form = builder(dashboard)
    create = form.get_by_role("button", name="Create schedule")
    cron = form.get_by_label("Cron expression")
    await fill_schedule(dashboard, "Broken", "0 8 * *")
    await create.click()
    await expect(form.locator("#schedule-cron-error")).to_have_text(BAD_CRON)
    await expect(cron).to_have_attribute("aria-invalid", "true")
    await expect(cron).to_be_focused()
    await expect(form.locator(".form-error")).to_have_text("")

    # A param is named beside the kind's own field (`params.steps`), the cron's error gone with the fix.
    await cron.fill("0 8 * * 1")
    await expect(cron).not_to_have_attribute("aria-invalid", "true")
    await form.get_by_label("Steps").fill("0")
    await create.click()
    steps_error = form.locator('.field[data-field="steps"] .field-error')
    await expect(steps_error).to_have_text("Input should be greater than or equal to 1")
    await expect(form.get_by_label("Steps")).to_have_attribute("aria-invalid", "true")
    await expect(form.locator("#schedule-cron-error")).to_have_text("")

    await form.get_by_label("Steps").fill("1")
    await form.get_by_label("Timezone").fill("Mars/Olympus")
    await create.click()
    await expect(form.locator("#schedule-timezone-error")).to_contain_text("'Mars/Olympus' is not an IANA timezone")
    await expect(steps_error).to_have_text("")

    # Once, with no time: the form says so before anything is sent.
    await form.get_by_label("Timezone").fill("UTC")
    await form.get_by_label("Once at").check()
    await expect(cron).to_be_hidden()
    await create.click()
    await expect(form.locator("#schedule-run-at-error")).to_have_text("Choose the date and time to run it.")

    await expect(rows(dashboard)).to_have_count(0)
    await expect(empty_line(dashboard)).to_have_text("No schedules yet.")
    assert await schedules() == []


async def test_pause_resume_and_delete_move_the_row_in_every_tab(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    other = await dashboard.another_tab()
    await create_schedule(dashboard, "Weekly report")
    await expect(rows(other)).to_have_count(1)

    def row(tab: Dashboard) -> Locator:
        return rows(tab).filter(has_text="Weekly report")

    await row(dashboard).get_by_role("button", name="Pause schedule Weekly report").click()
    for tab in (dashboard, other):
        await expect(row(tab)).to_have_attribute("data-state", "paused")
        await expect(row(tab).locator(".schedule-state")).to_have_text("Paused")
        await shows_next_run(row(tab), None)
        await expect(row(tab).get_by_role("button", name="Resume schedule Weekly report")).to_be_visible()
    await expect(dashboard.page.locator("#announcer")).to_have_text("Schedule Weekly report paused.")
    (paused,) = await schedules()
    assert paused.paused and paused.next_run_at is None

    # Resumed from the other tab this time: the first follows.
    await row(other).get_by_role("button", name="Resume schedule Weekly report").click()
    await expect(row(other).locator(".schedule-state")).to_have_text("Active")
    (resumed,) = await schedules()
    assert not resumed.paused and resumed.next_run_at is not None
    for tab in (dashboard, other):
        await expect(row(tab).locator(".schedule-state")).to_have_text("Active")
        await shows_next_run(row(tab), resumed.next_run_at)
        await expect(row(tab).get_by_role("button", name="Pause schedule Weekly report")).to_be_visible()

    # Delete asks first: dismissed, nothing is deleted.
    delete = row(dashboard).get_by_role("button", name="Delete schedule Weekly report")
    questions: list[str] = []
    asked = asyncio.Event()

    async def answer(dialog: Dialog, accept: bool) -> None:
        questions.append(dialog.message)
        asked.set()
        await (dialog.accept() if accept else dialog.dismiss())

    dashboard.page.once("dialog", lambda dialog: answer(dialog, accept=False))
    await delete.click()
    async with asyncio.timeout(10):
        await asked.wait()
    assert questions == ["Delete the schedule Weekly report? The jobs it made stay."]
    await expect(rows(dashboard)).to_have_count(1)
    await expect(row(other)).to_have_attribute("data-state", "active")
    assert len(await schedules()) == 1

    dashboard.page.once("dialog", lambda dialog: answer(dialog, accept=True))
    await delete.click()
    for tab in (dashboard, other):
        await expect(rows(tab)).to_have_count(0)
        await expect(empty_line(tab)).to_have_text("No schedules yet.")
    await expect(dashboard.page.locator("#schedule-list-heading")).to_be_focused()
    assert await schedules() == []


async def test_the_list_is_asked_again_after_a_reconnect_and_buttons_wait_for_the_connection(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    row = await create_schedule(dashboard, "Through a reconnect")
    pause = row.get_by_role("button", name="Pause schedule Through a reconnect")
    create = builder(dashboard).get_by_role("button", name="Create schedule")

    tap.refusing = True
    await tap.cut()
    await tap.wait_refused(1)
    await expect(dashboard.connection).to_have_attribute("data-state", "reconnecting")
    for button in (pause, row.get_by_role("button", name=re.compile("^Delete")), create):
        await expect(button).to_be_disabled()
    # Changed while this page was away: no frame of it ever reaches the page.
    await database_sync_to_async(lambda: Schedule.objects.update(paused=True, next_run_at=None))()

    tap.refusing = False  # the page's next attempt (its backoff is below a second or two here) gets through
    await dashboard.wait_live()
    await expect(row.locator(".schedule-state")).to_have_text("Paused")
    await shows_next_run(row, None)
    await expect(row.get_by_role("button", name="Resume schedule Through a reconnect")).to_be_enabled()
    await expect(create).to_be_enabled()


async def test_a_due_time_fired_by_the_scheduler_shows_its_job_and_its_status_in_the_row(
    dashboard: Dashboard, user: User, live_stack: LiveStack
) -> None:
    await dashboard.log_in(user.username)
    row = await create_schedule(dashboard, "Fires soon")
    other = await dashboard.another_tab()
    await expect(rows(other)).to_have_count(1)
    (made,) = await schedules()
    await expect(row.locator(".schedule-last")).to_have_text("—")

    due = timezone.now() + timedelta(seconds=1)
    await database_sync_to_async(lambda: Schedule.objects.update(next_run_at=due))()
    await shows_next_run(row, made.next_run_at)  # the page hears nothing of a change in the database
    await asyncio.sleep((due - timezone.now()).total_seconds())  # until it is due, as beat's next tick would
    assert await run_due(live_stack) == 1

    job = await database_sync_to_async(lambda: Job.objects.get(request_id__startswith=f"schedule:{made.pk}:"))()
    (fired,) = await schedules()
    assert fired.last_job_id == job.pk and fired.next_run_at is not None and fired.next_run_at > due
    for tab in (dashboard, other):
        shown = rows(tab).filter(has_text="Fires soon")
        link = shown.locator(".schedule-last").get_by_role("link")
        await expect(link).to_have_attribute("href", f"/jobs/{job.pk}/")
        await expect(link).to_have_text(f"Job {str(job.pk)[:8]}")
        # The job runs on after the schedule's frame: its own events carry the row's status to its end.
        await expect(shown.locator(".schedule-last .badge")).to_have_text("Succeeded", timeout=JOB_TIMEOUT)
        await shows_next_run(shown, fired.next_run_at)
        await expect(shown.locator(".schedule-state")).to_have_text("Active")

    # For the picture: a paused one and a one-off beside it (docs/schedules.png).
    await create_schedule(dashboard, "Quarterly export", "30 6 1 */3 *")
    await rows(dashboard).filter(has_text="Quarterly export").get_by_role("button", name=re.compile("^Pause")).click()
    await expect(rows(dashboard).filter(has_text="Quarterly export").locator(".schedule-state")).to_have_text("Paused")
    await create_once(dashboard, "In a month", timezone.now() + timedelta(days=30))
    await builder(dashboard).get_by_label("Repeat (cron)").check()
    await screenshot_of(dashboard, "#schedules", "schedules.png")  # docs/schedules.png


async def create_once(tab: Dashboard, name: str, moment: datetime) -> None:
    """A one-off at `moment`'s wall-clock time in Europe/Paris, typed into the datetime-local input."""
    wall = moment.astimezone(PARIS).replace(second=0, microsecond=0)
    form = builder(tab)
    await form.get_by_label("Schedule name").fill(name)
    await form.get_by_label("Once at").check()
    await form.get_by_label("Date and time").fill(f"{wall:%Y-%m-%dT%H:%M}")
    await form.get_by_label("Timezone").fill("Europe/Paris")
    await form.get_by_role("button", name="Create schedule").click()
    once = rows(tab).filter(has_text=name)
    await expect(once.locator(".schedule-when")).to_have_text(re.compile(r"^Once at \w"))
    made = await database_sync_to_async(Schedule.objects.get)(name=name)
    assert made.cron == "" and made.run_at == wall, (made.run_at, wall)  # the wall-clock time, read in its timezone
    await shows_next_run(once, wall)


async def screenshot_of(tab: Dashboard, selector: str, name: str) -> None:
    """The part of the page `selector` names, saved in test-artifacts/, drawn as in a full-page picture (so
    the sticky header stays at the top of the page instead of over the part)."""
    await tab.page.evaluate("window.scrollTo(0, 0)")
    await tab.page.mouse.move(0, 0)
    box = await tab.page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    ARTIFACTS.mkdir(exist_ok=True)
    await tab.page.screenshot(path=ARTIFACTS / name, full_page=True, clip=box, animations="disabled")
