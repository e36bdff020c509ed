"""The email and file forms: each submits its kind's params and shows the result or the errors.

The end-to-end tests run once the server offers the kind (`hello.kinds`); the upload
client is also tested against a stand-in upload endpoint, whatever the server offers.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from playwright.async_api import Request, Route, expect

from tasks import kinds
from tests.integration.browser import BROWSER_TESTS

if TYPE_CHECKING:
    from tests.integration.browser import Dashboard, SocketTap

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS

needs_email = pytest.mark.skipif("email.send" not in kinds.names(), reason="email.send is not registered yet")
needs_files = pytest.mark.skipif("file.process" not in kinds.names(), reason="file.process is not registered yet")
CSV = b"name,age,city\nada,36,London\ngrace,45,\nalan,41,Manchester\n"


@needs_email
async def test_an_email_to_several_addresses_is_sent_and_reported(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    form = dashboard.page.locator("#form-email")
    await form.get_by_label("To").fill("ada@example.com,\ngrace@example.com; alan@example.com")
    await form.get_by_label("Subject").fill("Quarterly report")
    await form.get_by_label("Message").fill("The numbers are in.")
    await form.get_by_role("button", name="Send email").click()

    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "succeeded")
    await expect(job.locator(".job-kind")).to_have_text("Email")
    await expect(job.locator(".job-params")).to_have_text("To 3 recipients · “Quarterly report”")
    await expect(job.locator(".kv")).to_contain_text("sent3")
    await expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    await expect(form.get_by_label("To")).to_have_value("")


@needs_email
async def test_a_bad_address_is_named_beside_the_to_field(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    form = dashboard.page.locator("#form-email")
    await form.get_by_label("To").fill("ada@example.com, not-an-address")
    await form.get_by_label("Message").fill("Hello")
    await form.get_by_role("button", name="Send email").click()

    await expect(dashboard.page.locator("#email-to-error")).to_have_text(
        "Address 2 (not-an-address): Enter a valid email address."
    )
    await expect(form.get_by_label("To")).to_have_attribute("aria-invalid", "true")
    await expect(dashboard.page.locator("#email-subject-error")).not_to_be_empty()
    await expect(dashboard.jobs).to_have_count(0)


@needs_files
async def test_a_dropped_csv_file_is_uploaded_and_summarised_in_a_table(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    form = page.locator("#form-file")
    await drop_file(dashboard, "people.csv", CSV.decode(), "text/csv")
    await expect(form.locator(".dropzone-file")).to_contain_text("people.csv")
    await form.get_by_label("Operation").select_option("csv.summary")
    await form.get_by_role("button", name="Upload and process").click()

    await expect(form.locator(".upload-text")).to_contain_text("Uploaded people.csv")
    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "succeeded")
    table = job.get_by_role("table")
    await expect(table.get_by_role("columnheader")).to_have_text(["Column", "Type", "Nulls", "Min", "Max", "Mean"])
    await expect(table.get_by_role("rowheader")).to_have_text(["name", "age", "city"])
    await expect(job.locator(".result-lead")).to_contain_text("3 rows")
    await expect(job.locator(".job-params")).to_have_text("CSV summary · people.csv")
    await dashboard.screenshot("dashboard-csv-summary.png")


@needs_files
async def test_a_chosen_text_file_gets_its_top_words_listed(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    form = dashboard.page.locator("#form-file")
    text = b"the cat and the hat and the bat\n"
    await form.locator("input[type=file]").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": text}
    )
    await form.get_by_label("Operation").select_option("text.stats")
    await form.get_by_role("button", name="Upload and process").click()
    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "succeeded")
    await expect(job.locator(".top-words li").first).to_contain_text("the")


# Every value the upload bar's aria-valuenow takes, in order (window.uploadPercents).
RECORD_UPLOAD_PERCENTS = """() => {
    const bar = document.querySelector("#form-file .upload [role=progressbar]");
    window.uploadPercents = [];
    new MutationObserver(() => window.uploadPercents.push(Number(bar.getAttribute("aria-valuenow"))))
        .observe(bar, { attributes: true, attributeFilter: ["aria-valuenow"] });
}"""
SLOW_UPLOAD_BYTES_PER_SECOND = 64 * 1024


@needs_files
async def test_the_upload_bar_shows_a_slow_upload_part_way_before_it_completes(
    dashboard: Dashboard, user: User
) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    form = page.locator("#form-file")
    upload_bar = form.locator(".upload").get_by_role("progressbar", name="Upload progress")
    await page.evaluate(RECORD_UPLOAD_PERCENTS)
    # Chromium's own throttling (as DevTools does it): the upload takes seconds, whatever this machine's speed.
    devtools = await page.context.new_cdp_session(page)
    await devtools.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    await devtools.send(
        "Network.emulateNetworkConditions", {**conditions, "uploadThroughput": SLOW_UPLOAD_BYTES_PER_SECOND}
    )
    content = b"0123456789abcdef" * (SLOW_UPLOAD_BYTES_PER_SECOND * 4 // 16)  # four seconds' worth
    await form.locator("input[type=file]").set_input_files(
        {"name": "big.bin", "mimeType": "application/octet-stream", "buffer": content}
    )
    await form.get_by_label("Operation").select_option("checksum")
    await form.get_by_role("button", name="Upload and process").click()

    # Part way: strictly between 0 and 100, and the text says the same.
    await expect(upload_bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9][0-9]?$"))
    await expect(form.locator(".upload-text")).to_have_text(re.compile(r"^Uploading… [1-9][0-9]?%$"))
    await expect(form.locator(".upload-text")).to_contain_text("Uploaded big.bin", timeout=30_000)
    await devtools.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": -1})
    percents: list[int] = await page.evaluate("window.uploadPercents")
    assert percents == sorted(percents), "the upload bar went backwards"
    assert percents[-1] == 100
    assert [percent for percent in percents if 0 < percent < 100], "no value between 0 and 100 was shown"

    job = await dashboard.newest_job(0)
    await dashboard.wait_status(job, "succeeded")
    await expect(job.locator(".job-params")).to_contain_text("big.bin")


async def test_the_upload_sends_the_csrf_token_and_shows_a_refusal_beside_the_file_field(
    tapped_dashboard: tuple[Dashboard, SocketTap], user: User
) -> None:
    """Against a stand-in /api/uploads/ that refuses the file with 413, as the protocol describes."""
    dashboard, tap = tapped_dashboard
    tap.rewrite = offer_file_process
    requests: list[Request] = []

    async def refuse(route: Route, request: Request) -> None:
        requests.append(request)
        body = {"error": {"code": "too_large", "message": "The file is larger than the 10 MB allowed."}}
        await route.fulfill(status=413, content_type="application/json", body=json.dumps(body))

    await dashboard.page.route(re.compile(r"/api/uploads/$"), refuse)
    dashboard.console_errors.allow("/api/uploads/: Failed to load resource: the server responded with a status of 413")
    await dashboard.log_in(user.username)
    form = dashboard.page.locator("#form-file")
    await expect(form).to_be_visible()
    await drop_file(dashboard, "big.bin", "x" * 1000, "application/octet-stream")
    await form.get_by_role("button", name="Upload and process").click()

    await expect(dashboard.page.locator("#file-upload-id-error")).to_have_text(
        "The file is larger than the 10 MB allowed."
    )
    assert len(requests) == 1
    request = requests[0]
    cookies = {cookie["name"]: cookie["value"] for cookie in await dashboard.page.context.cookies()}
    assert request.method == "POST"
    assert request.headers["x-csrftoken"] == cookies["csrftoken"]
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="big.bin"' in (request.post_data_buffer or b"")
    await expect(dashboard.jobs).to_have_count(0)


async def test_the_file_form_asks_for_a_file_first(tapped_dashboard: tuple[Dashboard, SocketTap], user: User) -> None:
    dashboard, tap = tapped_dashboard
    tap.rewrite = offer_file_process
    await dashboard.log_in(user.username)
    form = dashboard.page.locator("#form-file")
    await form.get_by_role("button", name="Upload and process").click()
    await expect(dashboard.page.locator("#file-upload-id-error")).to_have_text("Choose a file to upload.")


def offer_file_process(frame: str) -> str:
    """Make the hello offer file.process, so the page shows its form whatever the server offers."""
    message = json.loads(frame)
    if message.get("type") == "hello" and "file.process" not in message["kinds"]:
        message["kinds"] = [*message["kinds"], "file.process"]
        return json.dumps(message)
    return frame


async def drop_file(dashboard: Dashboard, name: str, content: str, mime: str) -> None:
    """Drag a file onto the drop zone, as from the desktop."""
    transfer = await dashboard.page.evaluate_handle(
        """([name, content, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([content], name, { type: mime }));
            return transfer;
        }""",
        [name, content, mime],
    )
    zone = dashboard.page.locator("#form-file .dropzone")
    await zone.dispatch_event("dragenter", {"dataTransfer": transfer})
    await zone.dispatch_event("drop", {"dataTransfer": transfer})
