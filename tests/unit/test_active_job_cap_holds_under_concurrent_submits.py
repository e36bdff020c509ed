"""JOBS_MAX_ACTIVE_PER_USER holds when one user's submits arrive at the same moment (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import User
from django.db import connections
from pytest_django.fixtures import Settings

from tasks import services
from tasks.errors import RateLimited
from tasks.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("published")]

CAP = 3
SUBMITTERS = 8


def test_concurrent_submits_never_exceed_the_cap(user: User, settings: Settings) -> None:
    settings.JOBS_MAX_ACTIVE_PER_USER = CAP
    start = threading.Barrier(SUBMITTERS)

    def submit(n: int) -> str:
        try:
            start.wait(timeout=30)
            services.submit(user, f"r{n}", "demo.countdown", {"steps": 3})
            return "accepted"
        except RateLimited:
            return "refused"
        finally:
            connections.close_all()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=SUBMITTERS) as pool:
        outcomes = list(pool.map(submit, range(SUBMITTERS)))

    assert Job.objects.filter(owner=user).count() == CAP
    assert sorted(outcomes) == ["accepted"] * CAP + ["refused"] * (SUBMITTERS - CAP)
