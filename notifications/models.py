"""Broadcast notices and each user's notifications.

A Notice is what staff broadcast, to everyone or to the members of one auth
group. Each addressed user gets a Notification row of their own when it is
sent (fan-out on write), as they do when one of their jobs finishes: the
unread count is then one indexed COUNT, right for users who were offline too.
Rows are written by notifications.notices and notifications.inbox only.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

NOTICE_MAX_CHARS = 500


class Level(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Notice(models.Model):
    text = models.CharField(max_length=NOTICE_MAX_CHARS)
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.INFO)
    # Null means everyone. Deleting a group deletes its notices (never widens them
    # to everyone); the users' notifications keep their copy of the text.
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="notices", help_text="Empty: everyone."
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notices_sent",
        help_text="Empty: sent with `manage.py notice` by the server's operator.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at", "-created_at"], name="notice_expiry_created")]

    def __str__(self) -> str:
        return f"{self.level}: {self.text[:60]}"

    @property
    def audience(self) -> str:
        return self.group.name if self.group is not None else "everyone"


class NotificationKind(models.TextChoices):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    NOTICE = "notice"


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.INFO)
    text = models.CharField(max_length=NOTICE_MAX_CHARS)
    job = models.ForeignKey("tasks.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notice = models.ForeignKey(Notice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The unread count, and the list paged by id.
            models.Index(fields=["user", "read_at"], name="notification_user_unread"),
            models.Index(fields=["user", "-id"], name="notification_user_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {self.text[:60]}"
