"""Receiving an upload: streamed to a temporary file beside its final place, counted as it comes.

Django's own handlers keep small files in memory and know no size limit. This
one writes every chunk straight to disk and stops the upload as soon as more
than the limit has arrived, so memory stays at one chunk whatever the client
sends. The temporary file lives under MEDIA_ROOT, so storing it is a rename
on the same file system; it is deleted when closed, so an upload that is
refused or fails leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

FIELD = "file"
# Room for the multipart framing around the file (boundaries, part headers, a
# long file name, the CSRF field) when Content-Length is checked up front.
MULTIPART_OVERHEAD = 64 * 1024


class UploadTooLarge(MultiPartParserError):
    """More than UPLOAD_MAX_BYTES arrived (or Content-Length says it would).

    A MultiPartParserError, so Django marks the request body as unreadable and
    nothing reads it again.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"The upload is larger than {limit} bytes.")
        self.limit = limit


def incoming_directory() -> Path:
    return Path(settings.MEDIA_ROOT) / "uploads" / "incoming"


class IncomingFile(UploadedFile[bytes]):
    """An upload being received, in a temporary file that disappears when closed unless it was moved."""

    def __init__(self, name: str, content_type: str | None, charset: str | None) -> None:
        directory = incoming_directory()
        directory.mkdir(parents=True, exist_ok=True)
        temporary: IO[bytes] = tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", suffix=".part")  # noqa: SIM115
        super().__init__(temporary, name, content_type, 0, charset)

    def temporary_file_path(self) -> str:
        """Lets FileSystemStorage move the file into place instead of copying it."""
        assert self.file is not None
        return str(self.file.name)

    def close(self) -> None:
        assert self.file is not None
        with contextlib.suppress(FileNotFoundError):  # already moved into place: nothing to delete
            self.file.close()


class LimitedUploadHandler(FileUploadHandler):
    """Keeps the first file part named "file"; counts the bytes of every file part against the limit."""

    chunk_size = 256 * 1024  # a multiple of 4, as base64-encoded parts need

    def __init__(self, request: HttpRequest, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received = 0
        self.file: IncomingFile | None = None  # the name Django's parser looks for to close it on errors
        self._receiving = False

    def handle_raw_input(self, input_data: IO[bytes], META: dict[str, str], content_length: int, *args: Any) -> None:
        # Refuse before reading a byte when the client says it is sending too much.
        if content_length > self.max_bytes + MULTIPART_OVERHEAD:
            raise UploadTooLarge(self.max_bytes)

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        self._receiving = field_name == FIELD and self.file is None
        if self._receiving:
            self.file = IncomingFile(file_name, self.content_type, self.charset)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.discard()
            raise UploadTooLarge(self.max_bytes)
        if self._receiving and self.file is not None:
            self.file.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile[bytes] | None:
        if not self._receiving or self.file is None:
            return None  # another part: read, counted, dropped
        self._receiving = False
        self.file.seek(0)
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        if self._receiving:
            self.discard()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
