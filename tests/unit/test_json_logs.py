"""LOG_FORMAT=json: one JSON object per line, with the fields a log collector indexes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils.module_loading import import_string

from tasks import services
from telemetry.logging import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


def record(message: str, *args: object, extra: dict[str, object] | None = None) -> logging.LogRecord:
    logger = logging.getLogger("tests.json")
    return logger.makeRecord("tests.json", logging.INFO, __file__, 1, message, args, None, extra=extra)


def test_a_record_is_one_line_of_json_with_the_expected_keys() -> None:
    line = JsonFormatter().format(record("job %s submitted", "abc"))
    assert "\n" not in line
    entry = json.loads(line)
    assert {"time", "level", "logger", "message", "process"} <= set(entry)
    assert entry["message"] == "job abc submitted"
    assert (entry["level"], entry["logger"]) == ("INFO", "tests.json")
    assert entry["time"].endswith("+00:00")


def test_extra_fields_become_keys_and_values_json_cannot_hold_become_text() -> None:
    job_id = uuid.uuid4()
    extra = {"event": "socket.closed", "user_id": 7, "code": 4401, "job_id": job_id}
    entry = json.loads(JsonFormatter().format(record("socket closed", extra=extra)))
    assert entry["event"] == "socket.closed"
    assert (entry["user_id"], entry["code"], entry["job_id"]) == (7, 4401, str(job_id))


def test_an_exception_is_kept_in_one_field_with_its_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = record("error %s handling job.submit", "e1f2")
        made.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(made))
    assert entry["message"] == "error e1f2 handling job.submit"
    assert "ValueError: boom" in entry["exception"] and "Traceback" in entry["exception"]


def run_django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "core.settings.test", **env}
    command = [sys.executable, "-c", f"import django; django.setup(); {code}"]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


def test_log_format_json_makes_the_service_log_json_lines() -> None:
    code = "import logging; logging.getLogger('tasks.services').info('job %s submitted', 'j1', extra={'job_id': 'j1'})"
    result = run_django(code, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "job j1 submitted"
    assert (entry["logger"], entry["job_id"]) == ("tasks.services", "j1")


def test_an_unknown_log_format_stops_the_process_naming_the_variable() -> None:
    result = run_django("pass", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT='xml'" in result.stderr


@pytest.fixture
def service_log_as_json() -> Iterator[StringIO]:
    """What tasks.services logs, through the formatter LOG_FORMAT=json configures."""
    logging_config: Any = settings.LOGGING
    formatter = import_string(logging_config["formatters"]["json"]["()"])()
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("tasks.services")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("published")
def test_job_state_changes_are_json_lines_with_their_fields_as_keys(service_log_as_json: StringIO, user: User) -> None:
    job, _ = services.submit(user, "r1", "demo.countdown", {"steps": 2})
    services.start(str(job.pk), job.celery_task_id)
    services.fail(str(job.pk), "demo_failure", "It failed at step 1.")
    entries = [json.loads(line) for line in service_log_as_json.getvalue().splitlines()]
    assert [entry["event"] for entry in entries] == ["job.queued", "job.started", "job.failed"]
    failed = entries[-1]
    assert (failed["job_id"], failed["kind"], failed["user_id"]) == (str(job.pk), "demo.countdown", user.pk)
    assert (failed["status"], failed["code"], failed["logger"]) == ("failed", "demo_failure", "tasks.services")
    assert [entry["seq"] for entry in entries] == [2, 3, 4]
