"""Batches and sequences in a real browser: built and started from the dashboard, one row each with live
counts, expanded into their own jobs (followed only while expanded), cancelled and retried as a whole, a
batch too large for one frame sent in parts, a file processed and its result emailed as a two-step
sequence, their pages, and the history's kind filter."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from playwright.async_api import Locator, Page, WebSocket, expect

from tests.integration.browser import BROWSER_TESTS, JOB_TIMEOUT, Dashboard, SocketTap
from tests.smtp import SmtpServer

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

TEXT = b"the cat and the hat and the bat\n"
MAX_FRAME_BYTES = 64 * 1024  # what the server reads of a frame, in UTF-8 bytes (docs/protocol.md, "Frames")


class Frames:
    """Every frame the page's WebSockets send and receive, parsed, in order."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.sent_bytes: list[int] = []  # the size of each frame of `sent`, in UTF-8 bytes
        self.received: list[dict[str, Any]] = []
        self.both: list[tuple[str, dict[str, Any]]] = []  # ("sent" or "received", the frame), in order
        self.came = asyncio.Event()
        page.on("websocket", self._watch)

    def _watch(self, socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: self._sent(payload))
        socket.on("framereceived", lambda payload: self._add("received", self.received, payload))

    def _sent(self, payload: str | bytes) -> None:
        self.sent_bytes.append(len(payload.encode() if isinstance(payload, str) else payload))
        self._add("sent", self.sent, payload)

    def _add(self, way: str, frames: list[dict[str, Any]], payload: str | bytes) -> None:
        frame = json.loads(payload)
        frames.append(frame)
        self.both.append((way, frame))
        self.came.set()

    async def wait(self, index: Callable[[], int], timeout: float = 10) -> int:
        """Wait until `index()` (of a frame) is not -1; that index."""
        async with asyncio.timeout(timeout):
            while (found := index()) < 0:
                self.came.clear()
                await self.came.wait()
        return found

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame.get("type") == kind]

    def received_of(self, kind: str, request_id: str) -> list[dict[str, Any]]:
        return [frame for frame in self.received if frame.get("type") == kind and frame.get("request_id") == request_id]

    def index_sent(self, wanted: dict[str, Any]) -> int:
        """The index of the first frame sent that has every field of `wanted`; -1 when none."""
        return first_with(self.sent, wanted)

    def index_received(self, wanted: dict[str, Any]) -> int:
        """The index of the first frame received that has every field of `wanted`; -1 when none."""
        return first_with(self.received, wanted)

    def children_received_since(self, start: int, batch_id: str) -> list[dict[str, Any]]:
        """The events of the batch's own jobs received from index `start` on."""
        return [frame for frame in self.received[start:] if parent_of(frame) == batch_id]


def first_with(frames: list[dict[str, Any]], wanted: dict[str, Any]) -> int:
    for index, frame in enumerate(frames):
        if all(frame.get(key) == value for key, value in wanted.items()):
            return index
    return -1


def parent_of(frame: dict[str, Any]) -> str | None:
    if frame.get("type") == "job.progress":
        parent: str | None = frame.get("parent_id")
        return parent
    job = frame.get("job")
    return job.get("parent_id") if isinstance(job, dict) else None


async def add_countdowns(dashboard: Dashboard, steps: int, interval_ms: int, copies: int) -> None:
    builder = dashboard.page.locator("#batch-builder")
    await builder.get_by_label("Kind of job").select_option("demo.countdown")
    await builder.get_by_label("Steps").fill(str(steps))
    await builder.get_by_label("Interval (ms)").fill(str(interval_ms))
    await builder.get_by_label("Copies").fill(str(copies))
    await builder.get_by_role("button", name="Add to batch").click()


async def start_batch(dashboard: Dashboard, title: str, size: int) -> Locator:
    """Title the batch in the builder and start it; its row, once listed."""
    builder = dashboard.page.locator("#batch-builder")
    before = await dashboard.jobs.count()
    await builder.get_by_label("Batch title").fill(title)
    await builder.get_by_role("button", name=f"Start batch of {size:,} jobs").click()
    return await dashboard.newest_job(before)


def count(batch: Locator, status: str) -> Locator:
    """One of the batch's counts ("finished", or a status), its number in data-n."""
    return batch.locator(f'.batch-counts [data-count="{status}"]')


def bar_of(batch: Locator) -> Locator:
    """The batch's own bar (its jobs' bars are inside it too, once expanded)."""
    return batch.locator(":scope > .job-progress").get_by_role("progressbar")


def jobs_of(batch: Locator) -> Locator:
    return batch.locator(".batch-job")


async def test_a_parallel_batch_runs_to_five_of_five_and_expands_into_its_five_jobs(
    dashboard: Dashboard, user: User
) -> None:
    frames = Frames(dashboard.page)
    await dashboard.log_in(user.username)
    await add_countdowns(dashboard, steps=15, interval_ms=100, copies=5)
    builder = dashboard.page.locator("#batch-builder")
    await expect(builder.locator(".batch-entries-count")).to_have_text("5 jobs in this batch")
    await expect(builder.locator(".batch-entry")).to_have_text(
        re.compile("^Countdown \N{MULTIPLICATION SIGN} 5 15 steps · 100 ms apart")
    )
    batch = await start_batch(dashboard, "Five countdowns", 5)
    batch_id = await batch.get_attribute("data-job-id")
    assert batch_id

    await expect(batch).to_have_attribute("data-kind", "batch")
    await expect(batch.locator(".job-kind")).to_have_text("Five countdowns")
    await expect(batch.locator(".job-params")).to_have_text("Batch of 5 jobs, side by side")
    await expect(builder.locator(".batch-entries-count")).to_have_text("No jobs added yet.")
    # Running, with live counts: the worker runs two at a time, so some run while others wait.
    await dashboard.wait_status(batch, "running")
    await expect(count(batch, "running")).not_to_have_attribute("data-n", "0", timeout=JOB_TIMEOUT)
    # Part way: only the batch's job.progress carries the counts between its start and its end.
    await expect(count(batch, "succeeded")).to_have_attribute("data-n", re.compile(r"^[1-4]$"), timeout=JOB_TIMEOUT)
    await dashboard.wait_status(batch, "succeeded")
    await expect(count(batch, "succeeded")).to_have_text("5 succeeded")
    await expect(count(batch, "finished")).to_have_text("5/5 finished")
    for status in ("queued", "running", "failed", "cancelled"):
        await expect(count(batch, status)).to_have_attribute("data-n", "0")
    await expect(bar_of(batch)).to_have_attribute("aria-valuenow", "100")
    assert not frames.sent_of("batch.follow"), "a collapsed batch is not followed"

    toggle = batch.locator(".batch-toggle")
    await expect(toggle).to_have_accessible_name("Expand batch Five countdowns: its 5 jobs")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(toggle).to_have_accessible_name("Collapse batch Five countdowns: its 5 jobs")
    await expect(jobs_of(batch)).to_have_count(5)
    for job in await jobs_of(batch).all():
        await expect(job).to_have_attribute("data-status", "succeeded")
        await expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await expect(jobs_of(batch).locator(".batch-job-place")).to_have_text(["1.", "2.", "3.", "4.", "5."])
    await expect(dashboard.jobs).to_have_count(1)  # its jobs are not rows of the list
    follow = frames.index_sent({"type": "batch.follow", "job_id": batch_id})
    listing = frames.index_sent({"type": "job.list", "filter": {"parent_id": batch_id}, "limit": 50})
    assert 0 <= follow < listing, "the batch is followed before its jobs are listed"

    # Jobs waiting to be a batch, for the picture.
    await add_countdowns(dashboard, steps=40, interval_ms=250, copies=10)
    await builder.get_by_label("Kind of job").select_option("email.send")
    await builder.get_by_label("To").fill("ada@example.com")
    await builder.get_by_label("Subject").fill("Done")
    await builder.get_by_role("button", name="Add to batch").click()
    await expect(builder.locator(".batch-entries-count")).to_have_text("11 jobs in this batch")
    await dashboard.screenshot("batches.png", full_page=True)  # docs/batches.png

    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(jobs_of(batch)).to_have_count(0)
    unfollow = await frames.wait(lambda: frames.index_sent({"type": "batch.unfollow", "job_id": batch_id}))
    assert unfollow > listing


async def test_a_batch_cancelled_while_running_cancels_its_jobs_and_its_retry_runs_them_again(
    dashboard: Dashboard, user: User
) -> None:
    frames = Frames(dashboard.page)
    await dashboard.log_in(user.username)
    await add_countdowns(dashboard, steps=30, interval_ms=100, copies=4)
    batch = await start_batch(dashboard, "Four countdowns", 4)
    batch_id = await batch.get_attribute("data-job-id")
    assert batch_id
    await dashboard.wait_status(batch, "running")
    await batch.get_by_role("button", name=re.compile("^Expand batch Four countdowns")).click()
    await expect(jobs_of(batch)).to_have_count(4)
    # Its jobs' own progress reaches the page while it is expanded (batch.follow): a running one's bar moves.
    running = batch.locator('.batch-job[data-status="running"]').first
    await expect(running).to_be_visible(timeout=JOB_TIMEOUT)
    running_id = await running.get_attribute("data-job-id")
    shown = batch.locator(f'.batch-job[data-job-id="{running_id}"]')
    before = int(await shown.get_by_role("progressbar").get_attribute("aria-valuenow") or 0)
    await expect(shown.get_by_role("progressbar")).not_to_have_attribute("aria-valuenow", str(before))
    await expect(dashboard.jobs).to_have_count(1)  # their events never make rows of the list

    await batch.get_by_role("button", name="Cancel batch Four countdowns").click()
    await dashboard.wait_status(batch, "cancelled")
    await expect(count(batch, "cancelled")).to_have_text("4 cancelled")
    await expect(count(batch, "finished")).to_have_text("4/4 finished")
    for job in await jobs_of(batch).all():
        await expect(job).to_have_attribute("data-status", "cancelled")
    await expect(bar_of(batch)).to_have_attribute("aria-valuenow", "100")  # four of four finished

    # Collapsed: unfollowed. Nothing of its jobs reaches the page after the server says so.
    await batch.get_by_role("button", name=re.compile("^Collapse batch")).click()
    await expect(jobs_of(batch)).to_have_count(0)
    after_unfollow = await frames.wait(lambda: unfollowed_at(frames, batch_id))

    await batch.get_by_role("button", name="Retry batch Four countdowns").click()
    await expect(batch.locator(".job-meta")).to_contain_text("attempt 2")
    await expect(count(batch, "running")).not_to_have_attribute("data-n", "0", timeout=JOB_TIMEOUT)
    await dashboard.wait_status(batch, "succeeded")
    await expect(count(batch, "succeeded")).to_have_text("4 succeeded")
    await expect(count(batch, "cancelled")).to_have_text("0 cancelled")
    assert frames.children_received_since(after_unfollow, batch_id) == []
    assert frames.children_received_since(0, batch_id), "its jobs' events came while it was expanded"

    await batch.get_by_role("button", name=re.compile("^Expand batch")).click()
    await expect(jobs_of(batch)).to_have_count(4)
    for job in await jobs_of(batch).all():
        await expect(job).to_have_attribute("data-status", "succeeded")
        await expect(job.locator(".job-meta")).to_contain_text("attempt 2")


# Every text the builder's status line shows from now on, kept in the page (parts can go faster than a poll).
WATCH_BUILDER_STATUS = """() => {
    const line = document.querySelector("#batch-builder .batch-entries-count");
    window.builderStatus = [];
    new MutationObserver(() => window.builderStatus.push(line.textContent))
        .observe(line, { childList: true, characterData: true, subtree: true });
}"""


async def test_a_batch_too_large_for_one_frame_goes_in_parts_and_is_accepted_whole(
    dashboard: Dashboard, user: User
) -> None:
    frames = Frames(dashboard.page)
    await dashboard.log_in(user.username)
    page = dashboard.page
    builder = page.locator("#batch-builder")
    await add_countdowns(dashboard, steps=1, interval_ms=0, copies=1800)
    await expect(builder.locator(".batch-entries-count")).to_have_text("1,800 jobs in this batch")
    await page.evaluate(WATCH_BUILDER_STATUS)
    batch = await start_batch(dashboard, "Eighteen hundred countdowns", 1800)
    batch_id = await batch.get_attribute("data-job-id")
    assert batch_id

    # One batch of 1,800, accepted whole: its row counts all of them.
    await expect(batch.locator(".job-params")).to_have_text("Batch of 1,800 jobs, side by side")
    await expect(count(batch, "finished")).to_have_text(re.compile(r"^[\d,]+/1,800 finished$"))
    await expect(builder.locator(".batch-entries-count")).to_have_text("No jobs added yet.")

    # About 80 bytes a job as JSON, about 140 KB in all: sent in parts of at most 64 KiB with one request_id,
    # each from the offset the server's batch.part answer to the part before gave.
    await frames.wait(lambda: frames.index_sent({"type": "batch.submit"}))
    request_id = frames.sent_of("batch.submit")[0]["request_id"]
    await frames.wait(lambda: frames.index_received({"type": "job.accepted", "request_id": request_id}))
    parts = frames.sent_of("batch.submit")
    assert len(parts) > 1, "a batch too large for one frame is sent in parts"
    (accepted,) = frames.received_of("job.accepted", request_id)
    assert accepted["job"]["id"] == batch_id
    assert accepted["job"]["batch"]["total"] == 1800
    answers = frames.received_of("batch.part", request_id)
    assert [part["request_id"] for part in parts] == [request_id] * len(parts)
    assert [part["offset"] for part in parts] == [0] + [answer["received"] for answer in answers]
    assert [part.get("continues") for part in parts] == [True] * (len(parts) - 1) + [None]
    ends = [part["offset"] + len(part["jobs"]) for part in parts]
    assert ends == [answer["received"] for answer in answers] + [1800]
    assert {job["kind"] for part in parts for job in part["jobs"]} == {"demo.countdown"}
    sent = zip(frames.sent, frames.sent_bytes, strict=True)
    sizes = [size for frame, size in sent if frame["type"] == "batch.submit"]
    assert max(sizes) <= MAX_FRAME_BYTES, sizes
    # Each part went only once the part before it was answered.
    conversation = [frame["type"] for _, frame in frames.both if frame.get("request_id") == request_id]
    assert conversation == ["batch.submit", "batch.part"] * (len(parts) - 1) + ["batch.submit", "job.accepted"]
    # The status line said how far the batch got while its parts went.
    shown = await page.evaluate("window.builderStatus")
    sending = [text for text in shown if re.fullmatch(r"Sending [\d,]+ of 1,800 jobs…", text)]
    assert sending == [f"Sending {end:,} of 1,800 jobs…" for end in ends], shown

    # Cancelled, so the stack is left idle: its unfinished jobs are cancelled one by one (some seconds).
    await dashboard.wait_status(batch, "running")
    await batch.get_by_role("button", name="Cancel batch Eighteen hundred countdowns").click()
    await expect(batch).to_have_attribute("data-status", "cancelled", timeout=4 * JOB_TIMEOUT)
    await expect(count(batch, "finished")).to_have_text("1,800/1,800 finished")
    await expect(count(batch, "cancelled")).not_to_have_attribute("data-n", "0")


async def test_an_expanded_batch_is_followed_again_after_a_reconnect(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    dashboard, tap = tapped_dashboard
    await dashboard.log_in(user.username)
    await add_countdowns(dashboard, steps=30, interval_ms=100, copies=4)
    batch = await start_batch(dashboard, "Through a reconnect", 4)
    await batch.locator(".batch-toggle").click()
    await expect(jobs_of(batch)).to_have_count(4)
    # The worker runs two at a time: the last one waits, and finishes well after the reconnect.
    await expect(jobs_of(batch).nth(3)).to_have_attribute("data-status", "queued")
    await tap.cut()
    await tap.wait_connections(2)
    await dashboard.wait_live()
    # Its end reaches the page only if the new connection follows the batch again.
    for job in await jobs_of(batch).all():
        await expect(job).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT)
    await expect(jobs_of(batch).locator(".batch-job-place")).to_have_text(["1.", "2.", "3.", "4."])
    await expect(dashboard.jobs).to_have_count(1)


def unfollowed_at(frames: Frames, batch_id: str) -> int:
    """The index of the received answer to batch.unfollow of the batch; -1 before it came."""
    for index, frame in enumerate(frames.received):
        if frame == {**frame, "type": "batch.follow", "job_id": batch_id, "following": False}:
            return index
    return -1


async def test_a_sequence_processes_a_file_then_emails_its_result(
    dashboard: Dashboard, user: User, smtp_server: SmtpServer
) -> None:
    await dashboard.log_in(user.username)
    form = dashboard.page.locator("#form-sequence")
    address = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    await form.locator("input[type=file]").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": TEXT}
    )
    await form.get_by_label("Operation").select_option("text.stats")
    await expect(form.locator("#sequence-email-hint")).to_have_text(
        "The email lists: Lines, Words, Characters, Most frequent words."
    )
    await form.get_by_label("Email the result to").fill(address)
    await form.get_by_role("button", name="Process, then email me").click()

    batch = await dashboard.newest_job(0)
    await expect(batch.locator(".job-kind")).to_have_text("Text statistics of notes.txt, then email")
    await expect(batch.locator(".job-params")).to_have_text("Sequence of 2 steps, one after another")
    await dashboard.wait_status(batch, "succeeded")
    await expect(count(batch, "succeeded")).to_have_text("2 succeeded")
    await batch.get_by_role("button", name=re.compile("^Expand batch")).click()
    steps = jobs_of(batch)
    await expect(steps.locator(".job-kind")).to_have_text(["Step 1: File", "Step 2: Email"])
    await expect(steps.nth(0)).to_have_attribute("data-status", "succeeded")
    await expect(steps.nth(1)).to_have_attribute("data-status", "succeeded")
    await expect(steps.nth(0).locator(".top-words li").first).to_contain_text("the")
    await expect(steps.nth(1).locator(".job-params")).to_have_text(f"To {address} · “Text statistics of notes.txt”")

    (received,) = smtp_server.to(address)
    assert received.message["Subject"] == "Text statistics of notes.txt"
    body = received.body
    assert "{{" not in body, body
    assert "Lines: 1\nWords: 8\nCharacters: 32\n" in body, body
    assert 'Most frequent words: [["the", 3], ["and", 2]' in body, body


async def test_bad_jobs_of_a_batch_are_named_beside_them_and_nothing_starts(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    builder = page.locator("#batch-builder")
    await add_countdowns(dashboard, steps=3, interval_ms=0, copies=1)
    await add_countdowns(dashboard, steps=0, interval_ms=0, copies=2)
    await builder.get_by_role("button", name="Start batch of 3 jobs").click()

    entries = builder.locator(".batch-entry")
    await expect(entries.nth(1).locator(".batch-entry-error")).to_have_text(
        "Job 2: Steps: Input should be greater than or equal to 1"
    )
    await expect(entries.nth(0).locator(".batch-entry-error")).to_have_text("")
    await expect(builder.locator(".batch-submit .form-error")).to_have_text(
        "Some jobs of the batch are not valid; nothing was created."
    )
    await expect(entries.nth(1)).to_be_focused()
    await expect(dashboard.jobs).to_have_count(0)

    # The address the browser lets through but the server refuses is named beside its field.
    sequence = page.locator("#form-sequence")
    await sequence.locator("input[type=file]").set_input_files(
        {"name": "a.txt", "mimeType": "text/plain", "buffer": TEXT}
    )
    await sequence.get_by_label("Email the result to").fill("ada@example")
    await sequence.get_by_role("button", name="Process, then email me").click()
    await expect(page.locator("#sequence-email-error")).to_have_text("Enter a valid email address.")
    await expect(sequence.get_by_label("Email the result to")).to_have_attribute("aria-invalid", "true")
    await expect(dashboard.jobs).to_have_count(0)


async def test_a_batch_pages_its_jobs_and_its_page_links_to_each_and_back(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    await add_countdowns(dashboard, steps=1, interval_ms=0, copies=60)
    batch = await start_batch(dashboard, "Sixty quick ones", 60)
    batch_id = await batch.get_attribute("data-job-id")
    # Sixty jobs through a worker that runs two at a time: seconds, or more on a busy machine.
    await expect(batch).to_have_attribute("data-status", "succeeded", timeout=3 * JOB_TIMEOUT)
    await expect(count(batch, "finished")).to_have_text("60/60 finished")

    await batch.get_by_role("button", name=re.compile("^Expand batch")).click()
    await expect(jobs_of(batch)).to_have_count(50)
    await expect(batch.locator(".batch-jobs-state")).to_have_text("50 of 60 shown.")
    await batch.get_by_role("button", name="More").click()
    await expect(jobs_of(batch)).to_have_count(60)
    places = await jobs_of(batch).locator(".batch-job-place").all_inner_texts()
    assert places == [f"{n}." for n in range(1, 61)]
    await expect(batch.get_by_role("button", name="More")).to_be_hidden()

    # The history lists batches under a kind of their own; a reload lists the batch, never its jobs.
    await page.locator(".history-filters").get_by_label("Kind").select_option("batch")
    await expect(page).to_have_url(re.compile(r"\?kind=batch$"))
    await expect(dashboard.jobs).to_have_count(1)
    await page.reload()
    await dashboard.wait_live()
    await expect(dashboard.jobs).to_have_count(1)
    await expect(dashboard.job(str(batch_id)).locator(".job-kind")).to_have_text("Sixty quick ones")

    await dashboard.job(str(batch_id)).get_by_role("link", name="Details of batch Sixty quick ones").click()
    await expect(page).to_have_url(re.compile(rf"/jobs/{batch_id}/$"))
    await expect(page.locator("#job-title")).to_have_text("Batch Sixty quick ones")
    await expect(page.locator('#batch-counts [data-count="succeeded"]')).to_have_text("60 succeeded")
    children = page.locator("#batch-jobs .batch-job")
    await expect(children).to_have_count(50)
    await page.locator("#batch-jobs").get_by_role("button", name="More").click()
    await expect(children).to_have_count(60)
    await expect(page.locator("#logs-section")).to_be_hidden()

    first_id = await children.first.get_attribute("data-job-id")
    await children.first.get_by_role("link", name=re.compile("^Details")).click()
    await expect(page).to_have_url(re.compile(rf"/jobs/{first_id}/$"))
    await expect(page.locator("#job-badge")).to_have_text("Succeeded")
    parent = page.get_by_role("link", name="Its batch: Sixty quick ones")
    await expect(parent).to_have_attribute("href", f"/jobs/{batch_id}/")
    await parent.click()
    await expect(page).to_have_url(re.compile(rf"/jobs/{batch_id}/$"))
