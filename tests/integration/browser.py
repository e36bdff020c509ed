"""Browser tests: Debian's Chromium, driven by Playwright's async API, against the live stack.

A test module uses these fixtures by naming this module in `pytest_plugins`, and
runs its tests in one event loop per module, so one browser serves the module:

    pytest_plugins = ["tests.integration.browser"]
    pytestmark = [pytest.mark.asyncio(loop_scope="module"), ...]

Each test gets a new browser context (its own cookies). The async API, not the
sync one: the sync API leaves its event loop marked as running between calls,
and Django then refuses ORM calls (fixtures, the database flush) in that thread.

Every page opened through a Dashboard is watched: a console error or an uncaught
exception in the page fails the test at teardown.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    WebSocketRoute,
    async_playwright,
    expect,
)

from tests.factories import PASSWORD
from tests.integration.conftest import LiveStack

CHROMIUM = Path("/usr/bin/chromium")
# This machine has no network: without the background-networking flags Chromium
# keeps trying to reach Google's services and floods the log with refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# How long a job may take to reach a state (ms). Waits end as soon as the
# condition holds; this only bounds a failure.
JOB_TIMEOUT = 30_000


class ConsoleErrors(list[str]):
    """Console errors and uncaught exceptions of the pages it watches."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: list[str] = []

    def allow(self, text: str) -> None:
        """Expect errors containing `text`, e.g. Chromium's own line for a request the test makes fail."""
        self.allowed.append(text)

    def unexpected(self) -> list[str]:
        return [error for error in self if not any(text in error for text in self.allowed)]

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.append(f"{page.url}: uncaught {error}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.append(f"{message.location.get('url', '')}: {message.text}")


# What every browser test module sets as its pytestmark: real processes, a real
# database, and one event loop per module shared with its browser.
BROWSER_TESTS = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run bin/ensure-chromium (bin/test does), or apt-get install chromium.")
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest_asyncio.fixture(loop_scope="module")
async def context(
    browser: Browser, live_stack: LiveStack, console_errors: ConsoleErrors
) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) whose pages must log no error."""
    context = await browser.new_context(base_url=live_stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    await context.close()
    assert console_errors.unexpected() == [], "the browser console logged errors"


@pytest_asyncio.fixture(loop_scope="module")
async def dashboard(context: BrowserContext, console_errors: ConsoleErrors) -> Dashboard:
    """A tab of a fresh browser profile; `await dashboard.log_in(...)` to start."""
    return Dashboard(await context.new_page(), console_errors)


@pytest_asyncio.fixture(loop_scope="module")
async def dashboard_at(browser: Browser, console_errors: ConsoleErrors) -> AsyncIterator[OpenDashboard]:
    """`await dashboard_at(base_url)`: a dashboard tab of a fresh profile on another server than the live stack's."""
    contexts: list[BrowserContext] = []

    async def open_dashboard(base_url: str) -> Dashboard:
        context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return Dashboard(await context.new_page(), console_errors)

    yield open_dashboard
    for context in contexts:
        await context.close()
    assert console_errors.unexpected() == [], "the browser console logged errors"


class Dashboard:
    """The dashboard page, as a person uses it."""

    def __init__(self, page: Page, console_errors: ConsoleErrors) -> None:
        self.page = console_errors.watch(page)
        self.console_errors = console_errors
        self.jobs = page.locator("#job-list > .job")
        self.connection = page.locator("#connection")

    async def log_in(self, username: str, password: str = PASSWORD, wait_live: bool = True) -> Dashboard:
        """Open the dashboard, get sent to the login page, log in, and (unless told not to) wait for the live socket."""
        await self.page.goto("/")
        await expect(self.page).to_have_url(ends_with("/accounts/login/?next=/"))
        await self.page.get_by_label("Username").fill(username)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Log in").click()
        await expect(self.page).to_have_url(ends_with("/"))
        if wait_live:
            await self.wait_live()
        return self

    async def another_tab(self) -> Dashboard:
        """A second tab of the same browser profile: same session cookie, same user."""
        tab = Dashboard(await self.page.context.new_page(), self.console_errors)
        await tab.page.goto("/")
        await tab.wait_live()
        return tab

    async def wait_live(self) -> None:
        await expect(self.connection).to_have_attribute("data-state", "live")
        await expect(self.connection.locator(".conn-text")).to_have_text("Live")

    async def start_countdown(self, steps: int | str, interval_ms: int | str = 0, fail_at: int | str = "") -> Locator:
        """Submit the countdown form; the new job's list item, found by its id once it is listed."""
        before = await self.jobs.count()
        form = self.page.locator("#form-countdown")
        await form.get_by_label("Steps").fill(str(steps))
        await form.get_by_label("Interval (ms)").fill(str(interval_ms))
        await form.get_by_label("Fail at step").fill(str(fail_at))
        await form.get_by_role("button", name="Start countdown").click()
        return await self.newest_job(before)

    async def newest_job(self, count_before: int) -> Locator:
        await expect(self.jobs).to_have_count(count_before + 1)
        job_id = await self.jobs.first.get_attribute("data-job-id")
        assert job_id, "a listed job has no id"
        return self.job(job_id)

    def job(self, job_id: str) -> Locator:
        return self.page.locator(f'#job-list > .job[data-job-id="{job_id}"]')

    async def wait_status(self, job: Locator, status: str) -> None:
        await expect(job).to_have_attribute("data-status", status, timeout=JOB_TIMEOUT)

    async def progress(self, job: Locator) -> int:
        """The percent the job's bar shows (-1 when indeterminate)."""
        value = await bar(job).get_attribute("aria-valuenow")
        return int(value) if value is not None else -1

    async def wait_progress_at_least(self, job: Locator, percent: int) -> None:
        job_id = await job.get_attribute("data-job-id")
        await self.page.wait_for_function(
            """([id, percent]) => {
                const bar = document.querySelector(`.job[data-job-id="${id}"] [role=progressbar]`);
                return bar !== null && Number(bar.getAttribute("aria-valuenow")) >= percent;
            }""",
            arg=[job_id, percent],
            timeout=JOB_TIMEOUT,
        )

    async def screenshot(self, name: str, full_page: bool = True) -> Path:
        """Saved in test-artifacts/; `full_page=False`: what the window shows (a modal dialog's backdrop
        covers only that)."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        # From the top, so the sticky header sits where a person sees it; the pointer off
        # the last button clicked, so no button shows its hover colour.
        await self.page.evaluate("window.scrollTo(0, 0)")
        await self.page.mouse.move(0, 0)
        await self.page.screenshot(path=path, full_page=full_page, animations="disabled")
        return path


class SocketTap:
    """Routes a page's WebSockets through the test, which can mute the server, cut the line and refuse.

    Muting drops the server's frames before they reach the page, as a network that
    silently loses packets does (`keep`, set before the page connects, drops only
    some of them: e.g. all but the `hello`, or all of them, as a server stuck after
    accepting the socket); cutting closes the page's socket with 1001, as a
    restarting server does; while `refusing`, every new socket is closed at once
    (1013, try again later) without reaching the server, as a server that is down.
    """

    def __init__(self) -> None:
        self.routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        self.refused = 0
        self.refusing = False
        self.connected = asyncio.Condition()
        # Set before the page connects to change every server frame on its way to the page.
        self.rewrite: Callable[[str], str] | None = None
        # Set before the page connects to drop every server frame for which it returns False.
        self.keep: Callable[[str], bool] | None = None

    async def handle(self, page_side: WebSocketRoute) -> None:
        if self.refusing:
            await page_side.close(code=1013, reason="try again later")
            async with self.connected:
                self.refused += 1
                self.connected.notify_all()
            return
        server_side = page_side.connect_to_server()
        rewrite, keep = self.rewrite, self.keep
        if rewrite is not None or keep is not None:
            server_side.on_message(lambda frame: _forward(page_side, str(frame), rewrite, keep))
        async with self.connected:
            self.routes.append((page_side, server_side))
            self.connected.notify_all()

    def mute_server(self) -> None:
        self.routes[-1][1].on_message(lambda frame: None)

    async def cut(self) -> None:
        await self.routes[-1][0].close(code=1001, reason="going away")

    async def wait_connections(self, count: int) -> None:
        async with asyncio.timeout(15), self.connected:
            await self.connected.wait_for(lambda: len(self.routes) >= count)

    async def wait_refused(self, count: int) -> None:
        async with asyncio.timeout(15), self.connected:
            await self.connected.wait_for(lambda: self.refused >= count)


def _forward(
    page_side: WebSocketRoute, frame: str, rewrite: Callable[[str], str] | None, keep: Callable[[str], bool] | None
) -> None:
    if keep is None or keep(frame):
        page_side.send(rewrite(frame) if rewrite is not None else frame)


@pytest_asyncio.fixture(loop_scope="module")
async def tapped_dashboard(context: BrowserContext, console_errors: ConsoleErrors) -> tuple[Dashboard, SocketTap]:
    """A dashboard tab whose sockets run through a SocketTap."""
    tap = SocketTap()
    page = await context.new_page()
    await page.route_web_socket(re.compile(r"/ws/jobs/$"), tap.handle)
    return Dashboard(page, console_errors), tap


OpenDashboard = Callable[[str], Awaitable[Dashboard]]


def bar(job: Locator) -> Locator:
    return job.get_by_role("progressbar")


def ends_with(suffix: str) -> re.Pattern[str]:
    return re.compile(re.escape(suffix) + "$")
