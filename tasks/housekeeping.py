"""Housekeeping: forget finished jobs and their uploads after JOBS_RETENTION_DAYS.

Run daily by the `jobs.housekeeping` Celery task (tasks.periodic, scheduled in
CELERY_BEAT_SCHEDULE); a plain function so tests and a shell can call it.

1. Finished jobs (succeeded, failed, cancelled) that finished before the
   cutoff are deleted, with their email deliveries, log lines and artifacts
   (cascade; an artifact's file goes once the delete commits, tasks.models).
2. Uploads created before the cutoff are deleted, unless a queued or running
   job still names them. Deleting an Upload row removes its file once the
   delete commits (uploads.models).
3. Files under MEDIA_ROOT/uploads and MEDIA_ROOT/artifacts with no row (an
   upload or artifact whose row was never saved: a worker killed while writing
   one, a row deleted while the disk was read-only) are removed once they are
   older than a day, so a file still being written is never hit.

Deletes go in batches, each its own transaction, so a first run over a large
backlog neither holds a long lock nor builds one huge query.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from tasks.models import FINISHED, UNFINISHED, Artifact, Job
from uploads.models import Upload

logger = logging.getLogger(__name__)

BATCH = 500
ORPHAN_GRACE = timedelta(days=1)
# The folders under MEDIA_ROOT whose every file belongs to a row of a model (stored_name, artifact_name).
STORED: tuple[tuple[str, type[Upload] | type[Artifact]], ...] = (("uploads", Upload), ("artifacts", Artifact))


@dataclass(frozen=True)
class Purged:
    jobs: int
    uploads: int
    orphan_files: int


def purge_finished_jobs(now: datetime, retention_days: int | None = None) -> Purged:
    """Delete what is older than the retention; the counts of what went."""
    days = settings.JOBS_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = now - timedelta(days=days)
    # A batch goes with its children (they cascade), never a child alone.
    jobs = _delete_in_batches(Job.objects.filter(status__in=FINISHED, finished_at__lt=cutoff, parent=None))
    kept = _uploads_named_by_unfinished_jobs()
    uploads = _delete_in_batches(Upload.objects.filter(created_at__lt=cutoff).exclude(pk__in=kept))
    media = Path(settings.MEDIA_ROOT)
    orphans = sum(_remove_orphan_files(media, directory, model, now - ORPHAN_GRACE) for directory, model in STORED)
    purged = Purged(jobs=jobs, uploads=uploads, orphan_files=orphans)
    logger.info(
        "housekeeping: purged %s jobs, %s uploads, %s orphan files older than %s days",
        jobs,
        uploads,
        orphans,
        days,
        extra={"event": "housekeeping.purged", "jobs": jobs, "uploads": uploads, "orphan_files": orphans},
    )
    return purged


def _delete_in_batches(queryset: QuerySet[Job] | QuerySet[Upload]) -> int:
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(queryset.values_list("pk", flat=True)[:BATCH])
            if not batch:
                return deleted
            # Through the model's delete, so Upload's post_delete removes files after the commit.
            queryset.model.objects.filter(pk__in=batch).delete()
        deleted += len(batch)


def _uploads_named_by_unfinished_jobs() -> set[uuid.UUID]:
    """Uploads a queued or running job may still read (file.process params name them)."""
    named: set[uuid.UUID] = set()
    for params in Job.objects.filter(status__in=UNFINISHED).values_list("params", flat=True).iterator():
        value = params.get("upload_id") if isinstance(params, dict) else None
        try:
            named.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    return named


def _remove_orphan_files(
    media: Path, directory: str, model: type[Upload] | type[Artifact], older_than: datetime
) -> int:
    """Remove files below media/directory that no row of `model` owns and that were last written before `older_than`."""
    root = media / directory
    removed = 0
    for chunk in _chunks(_old_files(root, older_than.timestamp()), BATCH):
        by_name = {f"{directory}/{path.relative_to(root).as_posix()}": path for path in chunk}
        owned = set(model.objects.filter(file__in=list(by_name)).values_list("file", flat=True))
        for name, path in by_name.items():
            if name not in owned:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _old_files(root: Path, before: float) -> Iterator[Path]:
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < before:
                yield path
        except FileNotFoundError:  # removed meanwhile
            continue


def _chunks(paths: Iterator[Path], size: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
