"""csv.summary: rows, and per column its type, nulls, min, max and mean.

The file is UTF-8 CSV as RFC 4180 and Excel write it (comma, double quotes,
doubled quotes inside quotes, a BOM allowed). The first non-blank row is the
header; every other non-blank row must have as many fields. Blank lines are
skipped and not counted.

Rows are parsed by the standard csv module and summarised a batch at a time,
column by column, with builtins that loop in C (map(int, ...), min, max, sum),
so the Python work per cell is small. Memory stays constant:
- a batch holds at most BATCH_ROWS rows and about BATCH_CHARS characters;
- a row may hold at most MAX_ROW_CHARS characters, so an unclosed quote cannot
  make the parser swallow the rest of the file into one row;
- at most MAX_COLUMNS columns are summarised.
Types and how cells count are in columns.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from uploads.operations.base import OperationError, Progress, chunks
from uploads.operations.columns import Column
from uploads.operations.text import Utf8Chunks

BATCH_ROWS = 1000
BATCH_CHARS = 1 << 20
MAX_ROW_CHARS = 1 << 20
MAX_LINE_CHARS = 1 << 20
MAX_COLUMNS = 1000
MAX_NAME = 255


def csv_summary(file: BinaryIO, size: int, progress: Progress) -> dict[str, Any]:
    lines = _Lines(Utf8Chunks(chunks(file, progress)))
    # strict: a quote left open at the end, or text after a closing quote, is an error, not a guess.
    rows = _Rows(csv.reader(lines, strict=True), lines)
    columns = [Column(name[:MAX_NAME]) for name in rows.header()]
    count = 0
    for batch in rows.batches(len(columns)):
        count += len(batch)
        for column, cells in zip(columns, zip(*batch, strict=True), strict=True):
            column.add(cells)
    return {"rows": count, "columns": [column.summary() for column in columns]}


class _RowTooLong(Exception):
    pass


class _Lines:
    """The text as physical lines for csv.reader, split where open(newline="") splits them.

    Pieces of text are split with io.StringIO, in C; the part after the last line
    end waits for the next piece. `chars` counts what the reader has been given,
    `mark` is where the current batch of rows began (set by _Rows): if the reader
    takes more than a batch and a row without finishing a row, one row is too long.
    """

    def __init__(self, text: Iterable[str]) -> None:
        self._text = text
        self.chars = 0
        self.mark = 0

    def __iter__(self) -> Iterator[str]:
        rest = ""
        for piece in self._text:
            if self.chars - self.mark > BATCH_CHARS + MAX_ROW_CHARS:
                raise _RowTooLong()
            text = rest + piece if rest else piece
            end = _last_line_end(text)
            whole, rest = text[:end], text[end:]
            if len(rest) > MAX_LINE_CHARS:
                raise _RowTooLong()
            self.chars += len(whole)
            yield from io.StringIO(whole, newline="")
        if rest:
            yield rest


def _last_line_end(text: str) -> int:
    """Where the last complete line of text ends; a final "\\r" waits, in case "\\n" follows."""
    return max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1)) + 1


class _Rows:
    """The csv reader's rows, checked and batched.

    Row numbers count the header as row 1 and blank lines too, so they are
    line numbers unless a quoted field spans lines.
    """

    def __init__(self, reader: Any, lines: _Lines) -> None:
        self._reader = reader
        self._lines = lines
        self.number = 0  # of the last row read

    def header(self) -> list[str]:
        try:
            for row in self._reader:
                self.number += 1
                if row:
                    return _checked_header(row)
        except (_RowTooLong, csv.Error) as exc:
            raise _unreadable(self.number + 1, exc) from None
        raise OperationError("empty_csv", "The CSV file is empty: it has no header row.")

    def batches(self, width: int) -> Iterator[list[list[str]]]:
        # The hot loop: one pass per row, so locals only.
        lines, number = self._lines, self.number
        batch: list[list[str]] = []
        lines.mark = lines.chars
        try:
            for row in self._reader:
                number += 1
                if len(row) == width:
                    batch.append(row)
                elif row:  # an empty row is a blank line, skipped
                    raise OperationError("bad_csv", f"Row {number:,} has {len(row)} fields, the header has {width}.")
                if len(batch) == BATCH_ROWS or lines.chars - lines.mark > BATCH_CHARS:
                    if batch:
                        yield batch
                        batch = []
                    lines.mark = lines.chars
        except (_RowTooLong, csv.Error) as exc:
            raise _unreadable(number + 1, exc) from None
        if batch:
            yield batch


def _checked_header(row: list[str]) -> list[str]:
    if len(row) > MAX_COLUMNS:
        raise OperationError(
            "too_many_columns", f"The header has {len(row):,} columns; at most {MAX_COLUMNS:,} are summarised."
        )
    return row


def _unreadable(number: int, exc: Exception) -> OperationError:
    if isinstance(exc, _RowTooLong):
        return OperationError(
            "bad_csv", f"Row {number:,} is longer than {MAX_ROW_CHARS:,} characters (is a quote left open?)."
        )
    return OperationError("bad_csv", f"Row {number:,} cannot be read: {exc}.")
