"""The dashboard builds every kind's form from its JSON Schema (kind.list): each kind shipped, and the
example "Export my jobs", is submitted through its generated form; a server's invalid_params detail shows
beside its field; an artifact downloads from the job's link."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import User
from playwright.async_api import expect

from tests.integration.browser import BROWSER_TESTS, Dashboard

pytest_plugins = ["tests.integration.browser"]
pytestmark = BROWSER_TESTS


async def test_every_kind_shipped_runs_from_its_generated_form(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    page = dashboard.page
    countdown = await dashboard.start_countdown(steps=3)
    await dashboard.wait_status(countdown, "succeeded")

    email = page.locator("#form-email")
    await email.get_by_label("To").fill("ada@example.com, grace@example.com")
    await email.get_by_label("Subject").fill("Hello")
    await email.get_by_label("Message").fill("From a generated form.")
    await email.get_by_role("button", name="Send email").click()
    await dashboard.wait_status(await dashboard.newest_job(1), "succeeded")

    files = page.locator("#form-file")
    await files.locator("input[type=file]").set_input_files(
        {"name": "n.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}
    )
    await files.get_by_label("Operation").select_option("csv.summary")  # a oneOf of consts: a select of titles
    await expect(files.get_by_label("Operation").locator("option")).to_have_text(
        ["Checksum (SHA-256, MD5)", "CSV summary", "Text statistics"]
    )
    await files.get_by_role("button", name="Upload and process").click()
    await dashboard.wait_status(await dashboard.newest_job(2), "succeeded")

    export = page.locator("#form-export-my-jobs")
    today = datetime.now(UTC).date().isoformat()
    await export.get_by_label("From").fill(today)
    await export.get_by_label("Until").fill(today)
    await export.get_by_label("succeeded").check()  # an array of an enum: a checkbox per value
    await export.get_by_role("button", name="Export").click()
    job = await dashboard.newest_job(3)
    await dashboard.wait_status(job, "succeeded")
    await expect(job.locator(".kv")).to_contain_text("rows3")

    link = job.get_by_role("link", name=f"jobs-{today}-to-{today}.csv")
    async with page.expect_download() as waiting:
        await link.click()
    download = await waiting.value
    path = await download.path()
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,kind,status") and len(lines) == 4  # the three jobs before it
    assert {line.split(",")[1] for line in lines[1:]} == {"demo.countdown", "email.send", "file.process"}
    await dashboard.screenshot("dashboard-generated-forms.png")


async def test_a_server_refusal_shows_beside_the_field_it_names(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    export = dashboard.page.locator("#form-export-my-jobs")
    await export.get_by_label("Until").fill("2026-01-31")
    await export.get_by_role("button", name="Export").click()  # From left empty
    error = dashboard.page.locator("#export-my-jobs-created-after-error")
    await expect(error).to_have_text("Enter a date as YYYY-MM-DD.")
    await expect(export.get_by_label("From")).to_have_attribute("aria-invalid", "true")
    await expect(dashboard.page.locator("#export-my-jobs-created-before-error")).to_be_empty()
    await expect(dashboard.jobs).to_have_count(0)


async def test_a_form_follows_the_schema_s_types_bounds_defaults_and_help(dashboard: Dashboard, user: User) -> None:
    await dashboard.log_in(user.username)
    countdown = dashboard.page.locator("#form-countdown")
    steps = countdown.get_by_label("Steps")
    await expect(steps).to_have_attribute("type", "number")
    await expect(steps).to_have_attribute("min", "1")
    await expect(steps).to_have_attribute("max", "100000")
    await expect(steps).to_have_value("20")  # the schema's example
    await expect(countdown.get_by_label("Log every 10%")).to_have_attribute("type", "checkbox")
    await expect(countdown).to_contain_text("Fail on reaching this step")  # the field's description
    await expect(dashboard.page.locator("#form-email").get_by_label("Message")).to_have_js_property(
        "tagName", "TEXTAREA"
    )
    await expect(dashboard.page.locator("#form-email").get_by_label("Subject")).to_have_attribute("maxlength", "200")
