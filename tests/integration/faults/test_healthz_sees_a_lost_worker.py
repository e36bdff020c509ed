"""/healthz on a real stack: with every Celery worker gone it turns 503 naming the workers check once
its cached answer expires, and 200 again once a worker is back."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from core import stack
from tests.integration.faults.conftest import FaultStack

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CACHE_SECONDS = 2  # HEALTH_WORKERS_CACHE_SECONDS of this test's Daphne: a worker's absence shows within it
DEADLINE = 60.0  # generous: the machine is shared; how soon it turns is not what is tested


def healthz(base_url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def poll(base_url: str, status_wanted: int, what: str) -> dict[str, Any]:
    """Ask /healthz until it answers `status_wanted`; that answer's body."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status, body = healthz(base_url)
        if status == status_wanted:
            return body
        assert time.monotonic() < deadline, f"/healthz never {what}; last answer {status} {body}"
        time.sleep(0.2)


@pytest.fixture
def health_url(fault_stack: FaultStack) -> Iterator[str]:
    """A Daphne of the fault stack whose cached worker answer lasts CACHE_SECONDS."""
    port = stack.free_port()
    env = {**fault_stack.env, "HEALTH_WORKERS_CACHE_SECONDS": str(CACHE_SECONDS)}
    with open(fault_stack.logs / "healthz-daphne.log", "ab") as log:
        daphne = subprocess.Popen(stack.daphne_command("127.0.0.1", port), env=env, stdout=log, stderr=log)
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "Daphne", timeout=60, process=daphne)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop([daphne])


def test_healthz_fails_naming_the_workers_while_none_runs_and_recovers_with_a_new_one(
    fault_stack: FaultStack, health_url: str
) -> None:
    poll(health_url, 200, "answered 200 with a worker up")
    try:
        for worker in fault_stack.workers:
            if worker.poll() is None:
                fault_stack.kill_worker(worker)
        body = poll(health_url, 503, "turned 503 without a worker")
        assert body["status"] == "fail"
        assert body["failed"] == ["workers"]  # the database and Redis still answer
        assert "no worker answered a ping" in body["checks"]["workers"]["error"]
        assert body["checks"]["workers"]["replied"] == []
    finally:
        # Later fault tests need a worker, whatever happened here.
        fault_stack.start_worker()
    new_worker = f"fault-worker-{len(fault_stack.workers) - 1}"  # the name FaultStack.start_worker gave it
    body = poll(health_url, 200, "answered 200 again with a new worker")
    assert body["status"] == "ok"
    assert any(name.startswith(f"{new_worker}@") for name in body["checks"]["workers"]["replied"])
