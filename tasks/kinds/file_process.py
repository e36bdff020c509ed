"""file.process: run an operation (checksum, csv.summary, text.stats) over an upload.

The operations are plain functions in uploads.operations; this module checks
the params (the upload must be the submitter's), opens the stored file and
turns progress and failures into the job's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.kinds import Context, JobFailure, UploadId, kind
from tasks.kinds.fields import titled
from uploads.models import Upload
from uploads.operations import OPERATIONS, OperationError, progress_text, size_text

OPERATION_TITLES = {
    "checksum": "Checksum (SHA-256, MD5)",
    "csv.summary": "CSV summary",
    "text.stats": "Text statistics",
}


class FileProcessParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="File")

    upload_id: UploadId = Field(title="File", description="Drop a file here, or choose one.")
    operation: Literal["checksum", "csv.summary", "text.stats"] = Field(
        title="Operation", json_schema_extra=titled(OPERATION_TITLES)
    )


# The slowest operation (csv.summary) reads about 30 MB/s here; a 100 MiB file
# (UPLOAD_MAX_BYTES) on a slow disk and a busy core takes a few minutes at worst.
# Its own queue, so operators can give heavy file work workers of its own (-Q files).
@kind(
    "file.process",
    params=FileProcessParams,
    title="File",
    description="Upload a file, then checksum it, summarise a CSV or count words.",
    queue="files",
    soft_time_limit=10 * 60,
    submit_label="Upload and process",
)
def process(ctx: Context[FileProcessParams]) -> dict[str, Any]:
    params = ctx.params
    upload = Upload.objects.filter(pk=params.upload_id, owner_id=ctx.owner_id).first()
    if upload is None:
        raise _missing()
    operation = OPERATIONS[params.operation]
    with _open(upload) as file:
        ctx.log(f"Opened {upload.name} ({size_text(upload.size)}).")
        ctx.log(f"Running {OPERATION_TITLES[params.operation]}.")
        started = time.monotonic()
        try:
            result = operation(file, upload.size, _bytes_progress(ctx, params.operation, upload.size))
        except OperationError as exc:
            ctx.log(f"Stopped: {exc.message}", level="error")
            raise JobFailure(exc.code, exc.message) from None
    ctx.log(f"Finished in {time.monotonic() - started:.2f} s.")
    return result


def _open(upload: Upload) -> BinaryIO:
    try:
        # Unbuffered: the operations read large chunks themselves.
        return open(upload.file.path, "rb", buffering=0)  # closed by process()
    except FileNotFoundError:
        raise _missing() from None


def _missing() -> JobFailure:
    return JobFailure("upload_missing", "The uploaded file is no longer on the server; upload it again.")


def _bytes_progress(ctx: Context[FileProcessParams], stage: str, size: int) -> Callable[[int], None]:
    def progress(done: int) -> None:
        ctx.progress(done, size, stage=stage, message=progress_text(done, size))

    return progress
