"""One source of Daphne's command line (core.daphne): the standard options are added unless the caller gives them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import daphne, stack


def options(arguments: list[str]) -> dict[str, str]:
    return dict(zip(arguments[:-1:2], arguments[1:-1:2], strict=True))


def test_the_standard_options_and_the_application_are_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAPHNE_PING_INTERVAL", raising=False)
    monkeypatch.setenv("DAPHNE_PING_TIMEOUT", "45")
    arguments = daphne.arguments(["--bind", "127.0.0.2", "--port", "8000"])
    assert arguments[-1] == "core.asgi:application"
    assert options(arguments) == {
        "--websocket-max-message-size": "131072",
        "--websocket-max-frame-size": "131072",
        "--ping-interval": "20",
        "--ping-timeout": "45",
        "--bind": "127.0.0.2",
        "--port": "8000",
    }


def test_an_option_the_caller_gives_wins_in_either_spelling() -> None:
    arguments = daphne.arguments(["--ping-interval", "1", "--ping-timeout=2"])
    assert arguments.count("--ping-interval") == 1 and "--ping-timeout" not in arguments
    assert arguments[arguments.index("--ping-interval") + 1] == "1" and "--ping-timeout=2" in arguments


def test_another_application_replaces_the_service_s() -> None:
    arguments = daphne.arguments(["--port", "1", "--app", "bench.bare_asgi:application"])
    assert arguments[-1] == "bench.bare_asgi:application" and "--app" not in arguments


def test_make_run_and_the_tests_start_this_module() -> None:
    command = stack.daphne_command("127.0.0.1", 8123, "--proxy-headers")
    assert command[1:] == ["-m", "core.daphne", "--bind", "127.0.0.1", "--port", "8123", "--proxy-headers"]


def test_the_image_starts_this_module_and_repeats_none_of_its_options() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    (line,) = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    command = json.loads(line.removeprefix("CMD "))
    assert command[:3] == ["python", "-m", "core.daphne"]
    assert not set(command) & {*daphne.standard_options(), daphne.APPLICATION}
