"""The dashboard is safe by construction (CSP, text never parsed as HTML) and usable from the keyboard."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from playwright.async_api import Locator, ViewportSize, expect

from core.middleware import CONTENT_SECURITY_POLICY
from tasks import kinds
from tests.factories import UserFactory
from tests.integration.browser import BROWSER_TESTS
from tests.integration.conftest import LiveStack

if TYPE_CHECKING:
    from tests.integration.browser import Dashboard, SocketTap

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

HOSTILE = '<img src="x" onerror="window.pwned = true">'


def policy_of(url: str) -> str | None:
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        headers = exc.headers
    policy: str | None = headers.get("Content-Security-Policy")
    return policy


@pytest.mark.parametrize(
    "path",
    ["/", "/accounts/login/", "/admin/login/", "/static/js/dashboard.js", "/static/css/app.css", "/no-such-page/"],
)
async def test_every_response_carries_the_content_security_policy(live_stack: LiveStack, path: str) -> None:
    policy = await asyncio.to_thread(policy_of, live_stack.base_url + path)
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    # Connections (the WebSocket included) go to this site only, not to any ws: / wss: host.
    assert "connect-src 'self';" in policy and "ws:" not in policy


# Records the page's CSP violations (window.violations) and whether the injected script ran.
RECORD_VIOLATIONS = """() => {
    window.violations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
        window.violations.push({ directive: event.effectiveDirective, blocked: event.blockedURI });
    });
}"""
INJECT_INLINE_SCRIPT = """() => {
    const script = document.createElement("script");
    script.textContent = "window.inlineScriptRan = true;";
    document.body.append(script);
    return window.inlineScriptRan === true;
}"""


async def test_the_browser_refuses_to_run_an_inline_script_put_into_the_page(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    await page.evaluate(RECORD_VIOLATIONS)
    # Chromium logs the refusal as a console error: expected here (and waited for), so allowed.
    refusal = "Executing inline script violates the following Content Security Policy directive"
    dashboard.console_errors.allow(refusal)
    async with page.expect_console_message(lambda message: refusal in message.text):
        ran = await page.evaluate(INJECT_INLINE_SCRIPT)

    assert ran is False
    await page.wait_for_function("() => window.violations.length > 0")
    assert await page.evaluate("window.violations") == [{"directive": "script-src-elem", "blocked": "inline"}]
    assert await page.evaluate("window.inlineScriptRan") is None
    await dashboard.wait_live()  # the page's own module script still runs


async def test_the_page_may_open_a_websocket_only_to_its_own_site(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)  # its own socket is live under connect-src 'self'
    page = dashboard.page
    await page.evaluate(RECORD_VIOLATIONS)
    elsewhere = "ws://elsewhere.invalid/ws/jobs/"
    refusal = f"Connecting to '{elsewhere}' violates the following Content Security Policy directive"
    dashboard.console_errors.allow(refusal)
    async with page.expect_console_message(lambda message: refusal in message.text):
        await page.evaluate(
            "(url) => { try { new WebSocket(url); } catch { /* refused: the violation says so */ } }", elsewhere
        )

    await page.wait_for_function("() => window.violations.length > 0")
    assert await page.evaluate("window.violations") == [{"directive": "connect-src", "blocked": elsewhere}]


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True, is_superuser=True)


async def test_the_admin_works_under_the_policy(dashboard: Dashboard, staff: User) -> None:
    await dashboard.log_in(staff.username)
    job = await dashboard.start_countdown(steps=2)
    await dashboard.wait_status(job, "succeeded")

    page = dashboard.page
    await page.goto("/admin/tasks/job/")
    await expect(page.locator("#result_list")).to_contain_text("demo.countdown")
    # The admin's own scripts run (they are files, not inline): its theme toggle works.
    before = await page.evaluate("document.documentElement.dataset.theme || 'auto'")
    await page.locator("button.theme-toggle").first.click()
    await expect(page.locator("html")).not_to_have_attribute("data-theme", before)
    await page.locator("#result_list a").first.click()
    await expect(page.locator("#content h1")).to_contain_text("job")
    # Any CSP violation would be a console error, which fails the test at teardown.


async def test_job_text_from_the_server_is_shown_as_text_never_as_html(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    job: dict[str, Any] = {
        "id": "00000000-0000-4000-8000-000000000001",
        "kind": HOSTILE,
        "status": "failed",
        "params": {"note": HOSTILE},
        "attempt": 1,
        "seq": 3,
        "progress": {"current": 1, "total": 2, "percent": 50.0, "stage": HOSTILE, "message": HOSTILE},
        "result": None,
        "error": {"code": "x", "message": HOSTILE},
        "created_at": "2026-01-01T00:00:00.000Z",
        "started_at": "2026-01-01T00:00:01.000Z",
        "finished_at": "2026-01-01T00:00:02.000Z",
    }
    # As if the server had sent it: the page cannot tell.
    tap.routes[-1][0].send(json.dumps({"type": "job.failed", "job": job}))

    shown = dashboard.job(job["id"])
    await expect(shown.locator(".job-kind")).to_have_text(HOSTILE)
    await expect(shown.locator(".job-message")).to_have_text(HOSTILE)
    await expect(shown.locator(".job-error")).to_have_text("Error: " + HOSTILE)
    await expect(shown.locator("img")).to_have_count(0)
    assert await dashboard.page.evaluate("window.pwned === undefined")


async def test_a_countdown_can_be_run_and_cancelled_from_the_keyboard(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    steps = page.locator("#form-countdown").get_by_label("Steps")
    await tab_until(dashboard, steps)
    await page.keyboard.type("400")
    await page.keyboard.press("Tab")
    await page.keyboard.type("100")
    await page.keyboard.press("Enter")
    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "running")

    cancel = job.get_by_role("button", name="Cancel countdown job")
    await tab_until(dashboard, cancel)
    await page.keyboard.press("Enter")
    await dashboard.wait_status(job, "cancelled")
    # The announcement reaches screen readers through the live region.
    await expect(page.locator("#announcer")).to_have_text("Countdown job was cancelled.")


async def tab_until(dashboard: Dashboard, target: Locator, presses: int = 150) -> None:
    """Press Tab until `target` has the focus; fail if it is never reached."""
    for _ in range(presses):
        await dashboard.page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reachable with Tab")


PHONE: ViewportSize = {"width": 390, "height": 844}
# A summary table far wider than a phone: twelve columns with long names.
WIDE_CSV = "\n".join(
    [
        ",".join(f"customer_lifetime_value_column_{index}" for index in range(12)),
        *(",".join(str(row * 1000.5 + index) for index in range(12)) for row in range(3)),
    ]
).encode()
LONG_NAME = "quarterly_customer_lifetime_value_report_without_any_break_opportunities_final_v2.csv"


@pytest.mark.skipif("file.process" not in kinds.names(), reason="file.process is not registered yet")
async def test_at_phone_width_the_page_never_scrolls_sideways(dashboard: Dashboard, user: User) -> None:
    page = dashboard.page
    await page.set_viewport_size(PHONE)
    await dashboard.log_in(user.username)
    form = page.locator("#form-file")
    await form.locator("input[type=file]").set_input_files(
        {"name": LONG_NAME, "mimeType": "text/csv", "buffer": WIDE_CSV}
    )
    await form.get_by_label("Operation").select_option("csv.summary")
    await form.get_by_role("button", name="Upload and process").click()
    summary = await dashboard.newest_job(0)
    await dashboard.wait_status(summary, "succeeded")
    failed = await dashboard.start_countdown(steps=3, fail_at=2)
    await dashboard.wait_status(failed, "failed")
    running = await dashboard.start_countdown(steps=600, interval_ms=100)
    await dashboard.wait_status(running, "running")

    # The table is wider than the phone: it scrolls inside its own box, not the page.
    table_box = summary.locator(".table-scroll")
    assert await table_box.evaluate("box => box.scrollWidth > box.clientWidth")
    assert await page_width(dashboard) <= PHONE["width"]
    # Nor with the notifications open (two unread: the summary and the failure).
    await page.get_by_role("button", name=re.compile(r"^Notifications")).click()
    await expect(page.locator("#inbox-panel .inbox-item")).to_have_count(2)
    assert await page_width(dashboard) <= PHONE["width"]
    await dashboard.screenshot("dashboard-phone-wide-result.png")

    await running.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(running, "cancelled")


async def page_width(dashboard: Dashboard) -> int:
    """How wide the page's content is: above the viewport's width, the page scrolls sideways."""
    width: int = await dashboard.page.evaluate("document.documentElement.scrollWidth")
    return width
