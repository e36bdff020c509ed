"""Storing uploads: the one place an Upload row and its file are created together."""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile

from uploads.models import Upload
from uploads.names import display_name

logger = logging.getLogger(__name__)


def store(owner: User, received: UploadedFile[bytes]) -> Upload:
    """Move a received file into place under a generated name and record it for its owner."""
    upload = Upload(owner=owner, name=display_name(received.name or ""), size=received.size or 0)
    # FieldFile.save moves the file (IncomingFile.temporary_file_path) to stored_name().
    upload.file.save(upload.name, received, save=False)
    try:
        upload.save()
    except Exception:
        upload.file.delete(save=False)  # no row, so no file either
        raise
    logger.info("upload %s stored: %s bytes, owner %s", upload.pk, upload.size, upload.owner_id)
    return upload
