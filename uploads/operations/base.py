"""What every operation shares: its error, the progress callback, chunked reading."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

# Large enough that per-chunk Python overhead is noise next to hashing or
# decoding a chunk, small enough that memory stays a few MiB.
CHUNK_BYTES = 1 << 20

# Called with the number of bytes read so far. It may raise (a cancelled job's
# reporter raises JobCancelled), which stops the operation where it stands.
Progress = Callable[[int], None]


class OperationError(Exception):
    """The file is not what the operation needs; `code` and `message` are shown to the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_sequentially(file: BinaryIO) -> None:
    """Tell the kernel we read front to back, so it reads ahead further (a no-op where unsupported)."""
    # No fileno (BytesIO), or no fadvise on this OS: reading works all the same.
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)


def chunks(file: BinaryIO, progress: Progress, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes in chunks, reporting the bytes read before each chunk is handed on."""
    read_sequentially(file)
    done = 0
    while chunk := file.read(size):
        done += len(chunk)
        progress(done)
        yield chunk
