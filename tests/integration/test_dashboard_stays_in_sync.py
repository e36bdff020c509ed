"""The dashboard never shows a stale job: across reloads, tabs, dropped connections and ended sessions."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from playwright.async_api import BrowserContext, expect

from tests.integration.browser import BROWSER_TESTS

if TYPE_CHECKING:
    from tests.integration.browser import Dashboard, SocketTap

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS


async def test_a_reload_mid_job_draws_the_bar_from_the_snapshot_and_continues_it(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    job = await dashboard.start_countdown(steps=300, interval_ms=100)
    await dashboard.wait_progress_at_least(job, 2)
    before = await dashboard.progress(job)
    job_id = await job.get_attribute("data-job-id")

    # After the reload only hellos reach the page, so what the bar shows can come from
    # nothing but the snapshot (not from a progress event that happened to follow it).
    hellos: list[dict[str, Any]] = []
    tap.keep = keep_only_hellos(hellos)
    await dashboard.page.reload()
    await dashboard.wait_live()
    snapshot = next(held for held in hellos[-1]["jobs"] if held["id"] == job_id)
    assert snapshot["status"] == "running"
    assert snapshot["progress"]["percent"] >= before
    await expect(job.get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", str(math.floor(snapshot["progress"]["percent"]))
    )

    # Events flow again after a reconnect: the bar moves on from the snapshot.
    tap.keep = None
    connections = len(tap.routes)
    await tap.cut()
    await tap.wait_connections(connections + 1)
    await dashboard.wait_live()
    await dashboard.wait_progress_at_least(job, math.floor(snapshot["progress"]["percent"]) + 1)
    await job.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(job, "cancelled")


def keep_only_hellos(seen: list[dict[str, Any]]) -> Callable[[str], bool]:
    """A SocketTap `keep` that lets only `hello` through, and records each one in `seen`."""

    def keep(frame: str) -> bool:
        message = json.loads(frame)
        if message.get("type") != "hello":
            return False
        seen.append(message)
        return True

    return keep


async def test_two_tabs_of_one_user_show_each_others_jobs_live(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    other = await dashboard.another_tab()

    job = await dashboard.start_countdown(steps=300, interval_ms=100)
    job_id = await job.get_attribute("data-job-id")
    assert job_id
    mirrored = other.job(job_id)
    await other.wait_status(mirrored, "running")
    await other.wait_progress_at_least(mirrored, 2)

    # Cancelled in the other tab: the first tab follows, and both show the same bar.
    await mirrored.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(job, "cancelled")
    await other.wait_status(mirrored, "cancelled")
    stopped_at = await job.get_by_role("progressbar").get_attribute("aria-valuenow")
    await expect(mirrored.get_by_role("progressbar")).to_have_attribute("aria-valuenow", stopped_at or "")

    # Retried in the first tab: the other tab sees attempt 2 run.
    await job.get_by_role("button", name="Retry countdown job").click()
    await other.wait_status(mirrored, "running")
    await expect(mirrored.locator(".job-meta")).to_contain_text("attempt 2")
    await mirrored.get_by_role("button", name="Cancel countdown job").click()
    await dashboard.wait_status(job, "cancelled")


async def test_after_a_dropped_connection_the_snapshot_corrects_what_was_missed(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    witness = await dashboard.another_tab()
    job = await dashboard.start_countdown(steps=15, interval_ms=100)
    await dashboard.wait_status(job, "running")
    job_id = await job.get_attribute("data-job-id")
    assert job_id

    # The line goes quiet: the job ends (the other tab sees it) but this tab hears nothing.
    tap.mute_server()
    await witness.wait_status(witness.job(job_id), "succeeded")
    assert await job.get_attribute("data-status") == "running"

    await tap.cut()
    await tap.wait_connections(2)
    await dashboard.wait_live()
    await dashboard.wait_status(job, "succeeded")
    await expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await expect(job.locator(".job-message")).to_have_text("Step 15 of 15")


async def test_a_session_gone_on_reconnect_shows_logged_out_with_a_login_link(
    context: BrowserContext, tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    await context.clear_cookies()
    await tap.cut()  # the server answers the reconnect with 4401: no session any more

    await expect(dashboard.connection).to_have_attribute("data-state", "logged-out")
    await expect(dashboard.connection).to_contain_text("Logged out")
    link = dashboard.page.get_by_role("link", name="Log in again")
    await expect(link).to_have_attribute("href", "/accounts/login/?next=/")
    await expect(dashboard.page.locator("#form-countdown button[type=submit]")).to_be_disabled()

    await link.click()
    await dashboard.page.get_by_label("Username").fill(user.username)
    await dashboard.page.get_by_label("Password").fill("correct horse battery staple")
    await dashboard.page.get_by_role("button", name="Log in").click()
    await dashboard.wait_live()


async def test_logging_out_in_one_tab_logs_out_the_others(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    other = await dashboard.another_tab()
    await other.page.get_by_role("button", name="Log out").click()
    await expect(other.page).to_have_url(re.compile(r"/accounts/login/$"))
    # The server closes the first tab's socket with 4403; the page does not retry.
    await expect(dashboard.connection).to_have_attribute("data-state", "logged-out")
    await expect(dashboard.page.get_by_role("link", name="Log in again")).to_be_visible()


MERGE_RULES = """async () => {
    const { JobStore } = await import("/static/js/store.js");
    const job = (id, status, seq, current = 0, created = "2026-01-01T00:00:00.000Z") => ({
        id, kind: "demo.countdown", status, seq, created_at: created,
        progress: { current, total: 10, percent: current * 10, stage: "", message: "" },
    });
    const store = new JobStore();
    const seen = (id) => {
        const held = store.get(id);
        return held ? [held.status, held.seq, held.progress.current] : null;
    };
    const out = {};
    store.applyJob(job("a", "running", 5, 3));
    out.olderEventIgnored = !store.applyJob(job("a", "queued", 2)) && !store.applyJob(job("a", "running", 5, 9));
    out.olderProgressIgnored = !store.applyProgress("a", 4, { current: 1 });
    out.newerProgressApplied = store.applyProgress("a", 6, { current: 4 }) && seen("a")[2] === 4;
    out.unknownProgressIgnored = !store.applyProgress("zz", 99, { current: 1 });
    store.applyJob(job("b", "queued", 2, 0, "2026-01-01T00:00:01.000Z"));
    store.applyJob(job("c", "succeeded", 9, 10, "2026-01-01T00:00:02.000Z"));
    store.applyJob(job("d", "running", 3, 1, "2026-01-01T00:00:03.000Z"));
    // The snapshot: a finished at seq 8; b still queued; c and d missing.
    store.applySnapshot([job("a", "succeeded", 8, 10), job("b", "queued", 2)]);
    out.a = seen("a");
    out.b = seen("b");
    out.finishedMissingKept = seen("c");
    out.unfinishedMissingDropped = seen("d") === null;
    out.order = store.list().map((held) => held.id);
    return out;
}"""


async def test_the_job_store_merges_by_seq_as_the_protocol_says(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    result = await dashboard.page.evaluate(MERGE_RULES)
    assert result == {
        "olderEventIgnored": True,
        "olderProgressIgnored": True,
        "newerProgressApplied": True,
        "unknownProgressIgnored": True,
        "a": ["succeeded", 8, 10],
        "b": ["queued", 2, 0],
        "finishedMissingKept": ["succeeded", 9, 10],
        "unfinishedMissingDropped": True,
        "order": ["c", "b", "a"],
    }
