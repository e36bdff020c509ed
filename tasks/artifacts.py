"""A job's result files (Context.artifact): written to a temporary file, then stored and listed on the job.

1. `open` hands the kind a temporary file under MEDIA_ROOT/artifacts/incoming,
   so a result of any size streams to disk and never sits in memory.
2. When the kind's block ends without an error, the file goes to the default
   storage (a rename on the same disk for FileSystemStorage; a streamed copy for
   others), an Artifact row records it, and the job's `artifacts` list (what its
   Job object shows) gains its entry, in one transaction.
3. If the block raises, the temporary file is removed and nothing is recorded.

The owner downloads it at GET /api/artifacts/<id>/ (tasks.views); deleting the
job (retention) or retrying it deletes its artifacts and their files.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import transaction

from tasks.models import Artifact, Job
from uploads.names import display_name

INCOMING = "artifacts/incoming"
_CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+-]+)*")
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class WrittenFile(File):  # type: ignore[type-arg]
    """A finished temporary file; FileSystemStorage moves it into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return str(self.name)


class ArtifactWriter:
    """The ArtifactSink of one running job."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    @contextmanager
    def open(self, name: str, content_type: str, encoding: str | None = None) -> Iterator[IO[Any]]:
        directory = Path(settings.MEDIA_ROOT) / INCOMING
        directory.mkdir(parents=True, exist_ok=True)
        temporary = tempfile.NamedTemporaryFile(dir=directory, prefix="artifact-", suffix=".part", delete=False)  # noqa: SIM115
        path = Path(temporary.name)
        try:
            with temporary, _as_text(temporary, encoding) as stream:
                yield stream
            store(self.job_id, name, content_type, path)
        finally:
            path.unlink(missing_ok=True)  # moved into storage by now, unless something failed


@contextmanager
def _as_text(binary: IO[bytes], encoding: str | None) -> Iterator[IO[Any]]:
    """The file itself, or a text stream over it (newline="": text is written as given, as csv needs)."""
    if encoding is None:
        yield binary
        return
    text = io.TextIOWrapper(binary, encoding, newline="")
    try:
        yield text
    finally:
        text.detach()  # flushes, and leaves closing the file to its owner


def store(job_id: str, name: str, content_type: str, path: Path) -> Artifact:
    """Put a finished file into storage and list it on the job."""
    shown = display_name(name) or "artifact"
    kind = content_type.strip() if _CONTENT_TYPE.fullmatch(content_type.strip()) else DEFAULT_CONTENT_TYPE
    artifact = Artifact(job_id=job_id, name=shown, content_type=kind, size=os.path.getsize(path))
    with open(path, "rb") as handle:
        artifact.file.save(shown, WrittenFile(handle, name=str(path)), save=False)
    try:
        with transaction.atomic():
            artifact.save()
            job = Job.objects.select_for_update().only("id", "artifacts").get(pk=job_id)
            job.artifacts = [*job.artifacts, artifact.payload()]
            job.save(update_fields=["artifacts"])
    except Exception:
        artifact.file.delete(save=False)  # no row, so no file either
        raise
    return artifact


def forget(job: Job) -> None:
    """Delete a job's artifacts (rows now, files once the transaction commits): a new attempt starts with none."""
    Artifact.objects.filter(job_id=job.pk).delete()
    job.artifacts = []
