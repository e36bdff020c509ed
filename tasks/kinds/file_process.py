"""file.process: run an operation (checksum, csv.summary, text.stats) over an upload.

The operations are plain functions in uploads.operations; this module checks
the params (the upload must be the submitter's), opens the stored file and
turns progress and failures into the job's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tasks.errors import JobFailure
from tasks.kinds import register
from tasks.kinds.base import Kind, Reporter, RunContext
from uploads.models import Upload
from uploads.operations import OPERATIONS, OperationError, progress_text

NAME = "file.process"
NO_SUCH_UPLOAD = "No such upload."


class FileProcessParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Not strict: a UUID arrives as a JSON string.
    upload_id: Annotated[uuid.UUID, Field(strict=False)]
    operation: Literal["checksum", "csv.summary", "text.stats"]

    @field_validator("upload_id")
    @classmethod
    def _owned_by_submitter(cls, upload_id: uuid.UUID, info: ValidationInfo) -> uuid.UUID:
        # A field validator, so the error is reported on upload_id. The same
        # words for a missing upload and another user's: ids are not probed.
        owner_id = (info.context or {}).get("owner_id")
        if owner_id is None or not Upload.objects.filter(pk=upload_id, owner_id=owner_id).exists():
            raise ValueError(NO_SUCH_UPLOAD)
        return upload_id


def run(context: RunContext) -> dict[str, Any]:
    params: FileProcessParams = context.params
    upload = Upload.objects.filter(pk=params.upload_id, owner_id=context.owner_id).first()
    if upload is None:
        raise _missing()
    operation = OPERATIONS[params.operation]
    with _open(upload) as file:
        progress = _bytes_progress(context.reporter, params.operation, upload.size)
        try:
            return operation(file, upload.size, progress)
        except OperationError as exc:
            raise JobFailure(exc.code, exc.message) from None


def _open(upload: Upload) -> BinaryIO:
    try:
        # Unbuffered: the operations read large chunks themselves.
        return open(upload.file.path, "rb", buffering=0)  # closed by run()
    except FileNotFoundError:
        raise _missing() from None


def _missing() -> JobFailure:
    return JobFailure("upload_missing", "The uploaded file is no longer on the server; upload it again.")


def _bytes_progress(reporter: Reporter, stage: str, size: int) -> Callable[[int], None]:
    def progress(done: int) -> None:
        reporter.report(done, size, stage=stage, message=progress_text(done, size))

    return progress


KIND = register(
    Kind(
        name=NAME,
        params=FileProcessParams,
        run=run,
        task_name="jobs.file.process",
        # The slowest operation (csv.summary) reads about 30 MB/s here; a 100 MiB
        # file (UPLOAD_MAX_BYTES) on a slow disk and a busy core takes a few
        # minutes at worst. Ten leaves room, and stays well below the broker's
        # visibility timeout, past which Redis would hand the task out again.
        soft_time_limit=10 * 60,
        time_limit=10 * 60 + 60,
    )
)
