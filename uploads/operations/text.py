"""Reading a file as UTF-8 text in chunks, saying exactly where it stops being text."""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from uploads.operations.base import OperationError


class Utf8Chunks:
    """The decoded text of byte chunks, a leading BOM dropped, in pieces of about the chunk size.

    A multi-byte character cut by a chunk boundary is carried to the next chunk.
    The first byte that is not UTF-8, or a NUL byte (no text file has one; binary
    files nearly always do), raises OperationError("not_text") naming its byte
    offset and line. `newlines` counts the "\\n" handed out so far.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.newlines = 0

    def __iter__(self) -> Iterator[str]:
        offset = 0  # of data[0] in the file
        pending = b""  # the start of a character cut by the previous chunk boundary
        for chunk in self._chunks:
            data = pending + chunk if pending else chunk
            if offset == 0 and data.startswith(codecs.BOM_UTF8):
                data, offset = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            text, used = self._decode(data, offset)
            pending = data[used:]
            offset += used
            self.newlines += text.count("\n")
            if text:
                yield text
        if pending:
            raise self._not_text(offset, pending, 0, "The file is not UTF-8 text: it ends inside a character")

    def _decode(self, data: bytes, offset: int) -> tuple[str, int]:
        # Whichever comes first is reported: a NUL byte, or a byte that is not UTF-8 before it.
        nul = data.find(b"\x00")
        try:
            decoded = (
                codecs.utf_8_decode(data, "strict", False)
                if nul < 0
                else codecs.utf_8_decode(data[:nul], "strict", True)
            )
        except UnicodeDecodeError as exc:
            raise self._not_text(
                offset, data, exc.start, "The file is not UTF-8 text: it has an invalid byte"
            ) from None
        if nul >= 0:
            raise self._not_text(offset, data, nul, "The file is not text: it has a NUL byte")
        return decoded

    def _not_text(self, offset: int, data: bytes, at: int, what: str) -> OperationError:
        line = self.newlines + data.count(b"\n", 0, at) + 1
        return OperationError("not_text", f"{what} at byte offset {offset + at:,} (line {line:,}).")
