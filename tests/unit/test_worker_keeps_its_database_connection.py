"""A worker process keeps its database connection from one task to the next (CONN_MAX_AGE), and drops an
old or broken one, as Django does around requests (tasks.tasks.reuse_connections)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]  # missing from the stubs
from celery.signals import task_postrun, task_prerun
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def _around_a_task() -> None:
    """What a worker process does around each task: Celery's Django fix-up, then tasks.tasks' receivers."""
    fixup = DjangoWorkerFixup(current_app)
    for signal, close in ((task_prerun, fixup.close_database), (task_postrun, fixup.close_database)):
        close()
        signal.send(sender=None, task_id="t", task=None, args=(), kwargs={})


def test_the_connection_outlives_a_task(settings: Any) -> None:
    connection.settings_dict["CONN_MAX_AGE"] = 60
    try:
        connection.close()
        connection.ensure_connection()  # made under CONN_MAX_AGE=60
        before = connection.connection
        _around_a_task()
        assert connection.connection is before
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = settings.DATABASES["default"]["CONN_MAX_AGE"]


def test_a_connection_past_its_age_is_closed_after_a_task(settings: Any) -> None:
    connection.settings_dict["CONN_MAX_AGE"] = 0  # a new connection for each task
    try:
        connection.ensure_connection()
        connection.close_at = 0  # as close_old_connections reads it: the connection is past its age
        _around_a_task()
        assert connection.connection is None
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = settings.DATABASES["default"]["CONN_MAX_AGE"]
