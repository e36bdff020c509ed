"""A DJANGO_SETTINGS_MODULE that names no module stops every entry point at start, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], settings_module: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    if settings_module is not None:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    command = [sys.executable, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("entry", "args", "value"),
    [
        # A package that does not exist: Django would fail before anything of ours ran.
        ("manage.py", ["manage.py", "check"], "nope.settings"),
        ("celery_app", ["-c", "import celery_app"], "core.settings.nope"),
        ("core.asgi", ["-c", "import core.asgi"], "core/settings/production.py"),
    ],
)
def test_a_bad_value_fails_with_a_message_naming_the_variable_and_its_value(
    entry: str, args: list[str], value: str
) -> None:
    result = run(args, value)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert f"DJANGO_SETTINGS_MODULE={value!r}" in last
    assert "core.settings.production" in last  # what to use instead
    assert "ModuleNotFoundError" not in result.stderr


def test_unset_it_defaults_to_the_local_settings() -> None:
    result = run(["-c", "import os, celery_app; print(os.environ['DJANGO_SETTINGS_MODULE'])"], None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core.settings.local"
