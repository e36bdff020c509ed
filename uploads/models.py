"""An Upload: a file a user sent over HTTP, for jobs such as file.process to read."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone


def stored_name(upload: Upload, filename: str) -> str:
    """The file's path under MEDIA_ROOT. Generated: the client's filename never reaches the disk."""
    return f"uploads/{upload.created_at:%Y/%m}/{upload.pk}"


class Upload(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    name = models.CharField(max_length=255, help_text="Display name, sanitised; never used as a path.")
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    file = models.FileField(upload_to=stored_name, max_length=255)
    # A default rather than auto_now_add: stored_name needs it before the row is saved.
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="upload_owner_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"


@receiver(post_delete, sender=Upload)
def _delete_stored_file(sender: type[Upload], instance: Upload, **kwargs: Any) -> None:
    """Remove the file with its row (a user deleted, an admin action), once the delete has committed."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name), robust=True)
