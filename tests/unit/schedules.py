"""Helpers for schedule tests: make one, and read what it made."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User

from schedules import services
from schedules.models import Schedule
from tasks.models import Job


def make_schedule(user: User, **fields: Any) -> Schedule:
    fields.setdefault("kind", "demo.countdown")
    fields.setdefault("params", {"steps": 1})
    if "run_at" not in fields:
        fields.setdefault("cron", "0 8 * * *")
    schedule, created = services.create(user, services.Request(request_id=uuid.uuid4().hex, **fields))
    assert created
    return schedule


def jobs_of(schedule: Schedule) -> list[Job]:
    return list(Job.objects.filter(request_id__startswith=f"schedule:{schedule.pk}:").order_by("created_at"))
