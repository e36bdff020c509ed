"""A schedule: a job to submit at a time (`run_at`) or on a calendar (`cron` read in `timezone`)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from tasks.models import Job


class Schedule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="schedules")
    request_id = models.CharField(max_length=64, help_text="The schedule.create's idempotency key, per owner.")
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=64)
    params = models.JSONField(help_text="Checked when made, and again at each run.")
    cron = models.CharField(max_length=120, blank=True, help_text="Five fields, read in `timezone`; blank: one-off.")
    run_at = models.DateTimeField(null=True, blank=True, help_text="A one-off schedule's time.")
    timezone = models.CharField(max_length=64, default="UTC")
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(
        null=True, blank=True, help_text="The next due time; null when paused or when a one-off has run."
    )
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="The last due time that was claimed.")
    last_job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    last_error = models.CharField(max_length=500, blank=True, help_text="Why the last due time made no job.")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "request_id"], name="schedule_request_id_unique_per_owner"),
        ]
        indexes = [
            # What the scheduler reads every tick: the due ones, earliest first.
            models.Index(fields=["next_run_at"], condition=Q(next_run_at__isnull=False), name="schedule_due"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.kind} ({self.cron or self.run_at})"
