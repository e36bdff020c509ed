"""The dashboard shows notices as banners and keeps the bell's unread count in step in every tab;
browser notifications come only after the user allows them, and only for hidden tabs."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from playwright.async_api import BrowserContext, Locator, expect

from core import stack
from tests.integration.browser import BROWSER_TESTS
from tests.integration.conftest import LiveStack

if TYPE_CHECKING:
    from tests.integration.browser import Dashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
NOTICE = "Maintenance tonight from 22:00 to 22:15 UTC: running jobs pause and resume by themselves."

# Records system notifications instead of showing them, and counts permission requests.
RECORD_NOTIFICATIONS = """() => {
    const Real = window.Notification;
    window.shownNotifications = [];
    window.Notification = class {
        constructor(title, options) { window.shownNotifications.push({ title, ...options }); }
        static get permission() { return Real.permission; }
        static requestPermission() { return Real.requestPermission(); }
    };
}"""
COUNT_PERMISSION_REQUESTS = """
    window.permissionRequests = 0;
    const request = Notification.requestPermission.bind(Notification);
    Notification.requestPermission = (...args) => { window.permissionRequests += 1; return request(...args); };
"""
HIDE_TAB = """() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


async def send_notice(live_stack: LiveStack, *arguments: str) -> None:
    command = stack.python_command(str(MANAGE), "notice", *arguments)
    done = await asyncio.to_thread(
        subprocess.run, command, env=live_stack.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


def bell(tab: Dashboard) -> Locator:
    return tab.page.get_by_role("button", name=re.compile(r"^Notifications"))


def unread(tab: Dashboard) -> Locator:
    return tab.page.locator(".bell-count")


async def test_a_notice_and_the_unread_count_reach_every_tab(
    dashboard: Dashboard, live_stack: LiveStack, user: User
) -> None:
    await dashboard.log_in(user.username)
    other = await dashboard.another_tab()
    tabs = (dashboard, other)
    for tab in tabs:
        await expect(unread(tab)).to_be_hidden()

    await send_notice(live_stack, NOTICE, "--level", "critical", "--expires-in", "2h")
    for tab in tabs:
        banner = tab.page.get_by_role("alert").filter(has_text=NOTICE)
        await expect(banner).to_be_visible()
        await expect(banner).to_have_attribute("data-level", "critical")
        await expect(unread(tab)).to_have_text("1")
        await expect(bell(tab)).to_have_attribute("aria-label", "Notifications, 1 unread")

    # A job finishing is a notification too.
    job = await dashboard.start_countdown(steps=2, interval_ms=0)
    await dashboard.wait_status(job, "succeeded")
    for tab in tabs:
        await expect(unread(tab)).to_have_text("2")

    # The list, newest first, in the other tab; mark the job's notification read there.
    await bell(other).click()
    items = other.page.locator(".inbox-item")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_contain_text("demo.countdown job succeeded.")
    await expect(items.nth(1)).to_contain_text(NOTICE)
    await other.screenshot("dashboard-notice-and-notifications.png")
    await items.nth(0).get_by_role("button", name=re.compile(r"^Mark read")).click()
    for tab in tabs:
        await expect(unread(tab)).to_have_text("1")
    await expect(items.nth(0)).to_have_attribute("data-read", "true")

    # Mark all read in the first tab: both bells go quiet, and the open list follows.
    await bell(dashboard).click()
    await dashboard.page.get_by_role("button", name="Mark all read").click()
    for tab in tabs:
        await expect(unread(tab)).to_be_hidden()
        await expect(bell(tab)).to_have_attribute("aria-label", "Notifications")
    await expect(items.nth(1)).to_have_attribute("data-read", "true")
    await expect(other.page.get_by_role("button", name="Mark all read")).to_be_disabled()

    # Dismissing the banner in one tab dismisses it in both, and it stays dismissed after a reload.
    await dashboard.page.keyboard.press("Escape")
    await dashboard.page.get_by_role("alert").filter(has_text=NOTICE).get_by_role("button", name="Dismiss").click()
    for tab in tabs:
        await expect(tab.page.locator(".broadcast")).to_have_count(0)
    await other.page.reload()
    await other.wait_live()
    await expect(unread(other)).to_be_hidden()
    await expect(other.page.locator(".broadcast")).to_have_count(0)


async def test_notice_text_is_shown_as_text(dashboard: Dashboard, live_stack: LiveStack, user: User) -> None:
    await dashboard.log_in(user.username)
    markup = '<img src=x onerror="document.title=1">Read <b>this</b>'
    await send_notice(live_stack, markup, "--level", "info")
    banner = dashboard.page.get_by_role("status").filter(has_text="Read <b>this</b>")
    await expect(banner.locator(".broadcast-text")).to_have_text(markup)
    assert await banner.locator("img, b").count() == 0


async def test_browser_notifications_are_asked_for_with_the_button_and_shown_only_for_hidden_tabs(
    context: BrowserContext, dashboard: Dashboard, user: User
) -> None:
    await context.add_init_script(COUNT_PERMISSION_REQUESTS)
    await dashboard.log_in(user.username)
    page = dashboard.page
    assert await page.evaluate("window.permissionRequests") == 0  # never asked on load

    await bell(dashboard).click()
    ask = page.get_by_role("button", name="Notify me when a job finishes while this tab is hidden")
    await expect(ask).to_be_visible()
    await context.grant_permissions(["notifications"])
    await ask.click()
    await expect(page.locator(".browser-alerts-state")).to_have_text(re.compile(r"^Browser notifications are on"))
    await expect(ask).to_be_hidden()
    assert await page.evaluate("window.permissionRequests") == 1
    await page.keyboard.press("Escape")
    await page.evaluate(RECORD_NOTIFICATIONS)

    # Visible tab: the page shows the outcome itself.
    job = await dashboard.start_countdown(steps=1, interval_ms=0)
    await dashboard.wait_status(job, "succeeded")
    await expect(unread(dashboard)).to_have_text("1")
    assert await page.evaluate("window.shownNotifications") == []

    # Hidden tab: one system notification, tagged so that other hidden tabs replace rather than repeat it.
    await page.evaluate(HIDE_TAB)
    job = await dashboard.start_countdown(steps=1, interval_ms=0, fail_at=1)
    await dashboard.wait_status(job, "failed")
    # A function, not an expression: Playwright evaluates a function once, while an expression
    # is eval()ed on every poll, which the page's CSP (no unsafe-eval) refuses.
    await page.wait_for_function("() => window.shownNotifications.length === 1")
    (shown,) = await page.evaluate("window.shownNotifications")
    assert shown["title"] == "Countdown job failed"
    assert shown["body"].startswith("demo.countdown job failed: ")
    assert re.fullmatch(r"notification-\d+", shown["tag"])


async def test_at_phone_width_the_banner_and_the_list_fit_the_screen(
    dashboard: Dashboard, live_stack: LiveStack, user: User
) -> None:
    await dashboard.page.set_viewport_size({"width": 390, "height": 844})
    await dashboard.log_in(user.username)
    await send_notice(live_stack, "Deploys are frozen until Monday.", "--level", "warning")
    await expect(dashboard.page.locator(".broadcast")).to_contain_text("Deploys are frozen until Monday.")
    await dashboard.screenshot("dashboard-notice-phone.png")
    await bell(dashboard).click()
    panel = dashboard.page.locator(".inbox-panel")
    await expect(panel.locator(".inbox-item")).to_have_count(1)
    box = await panel.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    await dashboard.screenshot("dashboard-notifications-phone.png")
