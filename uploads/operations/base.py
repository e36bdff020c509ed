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

# Decimal units, largest first (KB = 10^3 bytes, as MB = 10^6 always was here).
_UNITS = (("GB", 10**9), ("MB", 10**6), ("KB", 10**3))

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


def size_text(size: int) -> str:
    """A size for a person, in the largest unit in which it shows as at least 1.0: "22 bytes", "4.2 KB"."""
    for unit, scale in _UNITS:
        if round(size / scale, 1) >= 1:
            return f"{size / scale:.1f} {unit}"
    return f"{size:,} {'byte' if size == 1 else 'bytes'}"


def progress_text(done: int, total: int) -> str:
    """`done` of `total` bytes, for a person: "512 of 900 bytes", "0.3 of 4.2 KB", "12.0 of 48.0 MB".

    Both numbers take the largest unit in which the total shows as at least 1.0,
    so a small file never reads "0.0 of 0.0 MB", and a file of 999,999 bytes
    reads "… of 1.0 MB", not "… of 1000.0 KB".
    """
    for unit, scale in _UNITS:
        if round(total / scale, 1) >= 1:
            return f"{done / scale:.1f} of {total / scale:.1f} {unit}"
    return f"{done:,} of {total:,} {'byte' if total == 1 else 'bytes'}"
