"""The connection indicator shows reconnecting while the server is away, the page keeps retrying
with exponential backoff and jitter, "Reconnect now" skips the wait, and a connection that
never brings its `hello` is given up and retried.

The page's clock is Playwright's fake one, paused while the server refuses: the page's
retries then happen only when the test moves time on, so nothing here depends on how
fast this machine is.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from playwright.async_api import BrowserContext, Page, WebSocketRoute, expect

from tests.integration.browser import BROWSER_TESTS, ConsoleErrors, Dashboard

if TYPE_CHECKING:
    from tests.integration.browser import SocketTap

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

# static/js/socket.js: the first wait is below BACKOFF_BASE_MS, no wait is longer than BACKOFF_MAX_MS;
# a connection without a hello after HELLO_TIMEOUT_MS is given up.
BACKOFF_BASE_MS = 500
BACKOFF_MAX_MS = 30_000
HELLO_TIMEOUT_MS = 10_000


async def pause_clock(page: Page) -> None:
    """Stop the page's (fake) time where it is: its timers fire only when the test runs the clock."""
    now = await page.evaluate("Date.now()")
    await page.clock.pause_at(now + 1)


async def test_while_the_server_refuses_the_indicator_says_reconnecting_until_it_is_live_again(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    page = dashboard.page
    await page.clock.install()
    await dashboard.log_in(user.username)
    retry = dashboard.connection.get_by_role("button", name="Reconnect now")
    submit = page.locator("#form-countdown").get_by_role("button", name="Start countdown")
    await expect(retry).to_be_hidden()

    tap.refusing = True
    await pause_clock(page)
    await tap.cut()
    await expect(dashboard.connection).to_have_attribute("data-state", "reconnecting")
    await expect(dashboard.connection.locator(".conn-text")).to_have_text("Reconnecting…")
    await expect(retry).to_be_visible()
    await expect(submit).to_be_disabled()
    # It waits before trying again: with time stopped, no new socket.
    assert tap.refused == 0 and len(tap.routes) == 1

    # Time passes: it tries again by itself, and again after each refusal (a run of the
    # clock may hold more than one attempt: the refusals are counted, not their number checked).
    for attempt in (1, 2, 3):
        await page.clock.run_for(BACKOFF_MAX_MS)
        await tap.wait_refused(attempt)
        await expect(dashboard.connection).to_have_attribute("data-state", "reconnecting")
        await expect(retry).to_be_visible()

    # The server is back. Time is still stopped, so only the button can reconnect now.
    tap.refusing = False
    await retry.click()
    await tap.wait_connections(2)
    await dashboard.wait_live()
    await expect(retry).to_be_hidden()
    await expect(submit).to_be_enabled()


async def test_the_indicator_says_connecting_until_the_first_hello(
    context: BrowserContext, console_errors: ConsoleErrors, user: User
) -> None:
    held: list[WebSocketRoute] = []

    async def hold_the_first_socket(page_side: WebSocketRoute) -> None:
        if held:
            page_side.connect_to_server()
        else:
            held.append(page_side)  # open, but no server behind it: no hello comes

    page = await context.new_page()
    await page.route_web_socket(re.compile(r"/ws/jobs/$"), hold_the_first_socket)
    dashboard = Dashboard(page, console_errors)
    await dashboard.log_in(user.username, wait_live=False)
    await expect(dashboard.connection).to_have_attribute("data-state", "connecting")
    await expect(dashboard.connection.locator(".conn-text")).to_have_text("Connecting…")
    await expect(dashboard.connection.get_by_role("button", name="Reconnect now")).to_be_hidden()
    await expect(page.locator("#form-countdown").get_by_role("button", name="Start countdown")).to_be_disabled()

    await held[0].close(code=1013, reason="try again later")
    await dashboard.wait_live()


async def test_a_connection_that_never_says_hello_is_given_up_and_tried_again(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    page = dashboard.page
    state = dashboard.connection
    # Time stops before the dashboard loads (a new page replays the clock's pause), so
    # the page's timers fire only when the test runs the clock.
    await page.clock.install()
    await page.goto("/accounts/login/")
    await pause_clock(page)
    # The server accepts the socket, but nothing it sends reaches the page: no hello.
    tap.keep = lambda frame: False
    await dashboard.log_in(user.username, wait_live=False)
    await tap.wait_connections(1)
    await expect(state).to_have_attribute("data-state", "connecting")

    # Just short of the timeout it is still waiting for the hello, on the same socket.
    await page.clock.run_for(HELLO_TIMEOUT_MS - 1)
    assert await state.get_attribute("data-state") == "connecting"
    assert len(tap.routes) == 1

    # At the timeout it gives the socket up and backs off like after any close.
    tap.keep = None
    await page.clock.run_for(1)
    await expect(state).to_have_attribute("data-state", "reconnecting")
    await expect(state.locator(".conn-text")).to_have_text("Reconnecting…")
    await expect(state.get_by_role("button", name="Reconnect now")).to_be_visible()
    assert len(tap.routes) == 1

    # After the wait it tries again, and this time the hello gets through.
    await page.clock.run_for(BACKOFF_BASE_MS)
    await tap.wait_connections(2)
    await dashboard.wait_live()
    await expect(page.locator("#form-countdown").get_by_role("button", name="Start countdown")).to_be_enabled()
    # The hello ended the wait: the live socket is kept past the timeout.
    await page.clock.run_for(HELLO_TIMEOUT_MS)
    assert await state.get_attribute("data-state") == "live"
    assert len(tap.routes) == 2


# _backoff() for ten failed attempts in a row, with Math.random() at its lowest, middle and highest.
BACKOFF_WAITS = """async () => {
    const { JobSocket } = await import("/static/js/socket.js");
    const random = Math.random;
    const waits = (value) => {
        Math.random = () => value;
        const socket = new JobSocket("ws://unused.invalid/");
        return Array.from({ length: 10 }, () => socket._backoff());
    };
    try {
        return { lowest: waits(0), middle: waits(0.5), highest: waits(1 - 2 ** -53) };
    } finally {
        Math.random = random;
    }
}"""


async def test_the_waits_between_attempts_grow_exponentially_to_a_cap_and_jitter_spreads_them(
    dashboard: Dashboard,
) -> None:
    await dashboard.page.goto("/accounts/login/")
    waits: dict[str, list[float]] = await dashboard.page.evaluate(BACKOFF_WAITS)
    lowest, middle, highest = waits["lowest"], waits["middle"], waits["highest"]

    # The longest possible wait doubles with each failed attempt, from the base...
    assert highest[0] == pytest.approx(BACKOFF_BASE_MS)
    capped_from = highest.index(max(highest))
    for earlier, later in itertools.pairwise(highest[:capped_from]):
        assert later == pytest.approx(2 * earlier)
    # ...until it reaches the cap, where it stays.
    assert capped_from >= 5
    assert highest[capped_from:] == pytest.approx([BACKOFF_MAX_MS] * (10 - capped_from))
    assert max(highest) == pytest.approx(BACKOFF_MAX_MS)

    # Full jitter: each wait is a random share of its ceiling, so tabs retrying together spread out...
    assert middle == pytest.approx([max(lowest[0], wait / 2) for wait in highest])
    for low, high in zip(lowest, highest, strict=True):
        assert low < high
    # ...but never below a floor, so a server that refuses at once is not hammered.
    assert len(set(lowest)) == 1
    assert 0 < lowest[0] < BACKOFF_BASE_MS
