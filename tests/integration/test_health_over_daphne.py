"""GET /healthz through Daphne, with the real database, Redis and Celery worker up."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.integration.conftest import LiveStack

pytestmark = pytest.mark.integration


def test_with_everything_up_it_answers_200_ok(live_stack: LiveStack) -> None:
    with urllib.request.urlopen(f"{live_stack.base_url}/healthz", timeout=10) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert body["status"] == "ok", body
    assert {name for name, check in body["checks"].items() if check["ok"]} == {"database", "redis", "workers"}
    assert any(name.startswith("test-worker@") for name in body["checks"]["workers"]["replied"])
